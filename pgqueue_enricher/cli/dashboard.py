"""`pgqueue-enricher dashboard`: the operators' web dashboard, served by uvicorn.

Authentication is required unless the server listens on loopback only and `--no-auth` is
given: the dashboard can requeue rows, which starts paid model calls.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Callable

from pgqueue_enricher.settings import Settings

PASSWORD_VARIABLES = "DASHBOARD_VIEWER_PASSWORD or DASHBOARD_ADMIN_PASSWORD"
# Short passwords are guessable, and every page is scrubbed of the passwords' text: one
# that is a common word would blank that word out wherever it appears.
MIN_PASSWORD_LENGTH = 12


def add_arguments(dashboard: argparse.ArgumentParser) -> None:
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dashboard.add_argument("--port", type=_port, default=8080, help="port to listen on (default 8080)")
    dashboard.add_argument(
        "--no-auth",
        action="store_true",
        help="no password, everyone is admin: only allowed when --host is a loopback address",
    )


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {value!r}")
    return number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _usage_error(message: str) -> int:
    print(f"pgqueue-enricher: {message}", file=sys.stderr)
    return 2


def cmd_dashboard(args: argparse.Namespace, load: Callable[[argparse.Namespace], Settings]) -> int:
    if args.no_auth and not is_loopback(args.host):
        return _usage_error(
            f"--no-auth is only allowed on a loopback address (127.0.0.1, ::1), not {args.host}: "
            f"set {PASSWORD_VARIABLES} instead"
        )
    settings = load(args)
    viewer = settings.dashboard_viewer_password
    admin = settings.dashboard_admin_password
    if not args.no_auth and viewer is None and admin is None:
        return _usage_error(
            f"the dashboard needs a password: set {PASSWORD_VARIABLES} "
            "(users viewer and admin over HTTP basic auth), or --no-auth on 127.0.0.1"
        )
    for variable, secret in (("DASHBOARD_VIEWER_PASSWORD", viewer), ("DASHBOARD_ADMIN_PASSWORD", admin)):
        if not args.no_auth and secret is not None and len(secret.get_secret_value()) < MIN_PASSWORD_LENGTH:
            return _usage_error(f"{variable} is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    try:
        import uvicorn

        from pgqueue_enricher.dashboard import basic_auth_role, create_app
        from pgqueue_enricher.dashboard.security import everyone_admin
    except ImportError:
        return _usage_error(
            "the dashboard's packages are not installed: pip install 'pgqueue-enricher[dashboard]'"
        )
    role = (
        everyone_admin
        if args.no_auth
        else basic_auth_role(
            viewer.get_secret_value() if viewer else None, admin.get_secret_value() if admin else None
        )
    )
    app = create_app(database_url=settings.require_database_url(), role=role)
    print(f"dashboard on http://{args.host}:{args.port}/", file=sys.stderr)
    # uvicorn's own access log would print every URL; our log lines are structured and scrubbed.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
