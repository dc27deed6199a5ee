"""Who may see and who may act: roles, HTTP basic auth, CSRF tokens and the response headers.

Two roles: `viewer` reads every page, `admin` also runs the actions. Standalone, the role
comes from HTTP basic auth (users `viewer` and `admin`, passwords from the settings); mounted
in a host's app, from a callable the host passes, which asks the host's own auth.

CSRF: every action form carries an HMAC of a secret and the caller's identity, and a POST
without the matching token is refused. The secret is per process unless the host passes one
(several processes behind one URL must share it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import secrets
from collections.abc import Awaitable, Callable
from typing import Literal

from starlette.requests import Request

Role = Literal["viewer", "admin"]
RoleCallable = Callable[[Request], "Role | None | Awaitable[Role | None]"]
ROLES: tuple[Role, ...] = ("viewer", "admin")

# No inline script, no inline style: every script and style sheet is a file the app serves.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def basic_auth_role(viewer_password: str | None, admin_password: str | None) -> RoleCallable:
    """The standalone server's role callable: users `viewer` and `admin` over HTTP basic auth."""
    passwords: dict[str, str] = {}
    if viewer_password:
        passwords["viewer"] = viewer_password
    if admin_password:
        passwords["admin"] = admin_password

    def role(request: Request) -> Role | None:
        user, password = _basic_credentials(request.headers.get("authorization", ""))
        expected = passwords.get(user or "")
        # compare_digest on both branches, so an unknown user costs the same as a wrong password.
        given = (password or "").encode()
        if expected is None:
            hmac.compare_digest(given, b"-" * len(given))
            return None
        return user if hmac.compare_digest(given, expected.encode()) else None  # type: ignore[return-value]

    role.basic_auth = True  # type: ignore[attr-defined]
    return role


def everyone_admin(request: Request) -> Role:
    """`--no-auth` on loopback: whoever reaches the port is the operator."""
    return "admin"


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


async def resolve_role(role: RoleCallable, request: Request) -> Role | None:
    found = role(request)
    if inspect.isawaitable(found):
        found = await found
    return found if found in ROLES else None


class Csrf:
    """Tokens bound to an identity (the role and, when the host gives one, the user)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or secrets.token_bytes(32)

    def token(self, identity: str) -> str:
        return hmac.new(self.secret, identity.encode(), hashlib.sha256).hexdigest()

    def valid(self, identity: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.token(identity), token or "")


def identity(request: Request, role: Role) -> str:
    """Who is acting, for the CSRF token and the action log: the basic-auth user, or the role
    plus the user the host's auth put in the scope (Starlette's AuthenticationMiddleware)."""
    user = request.scope.get("user")
    name = getattr(user, "display_name", None) or getattr(user, "username", None)
    return f"{role}:{name}" if name else role
