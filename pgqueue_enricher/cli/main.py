"""`pgqueue-enricher`: argument parsing and output only; the work lives in the other modules.

Exit codes: 0 success, 1 runtime failure, 2 configuration or usage error (the message names
the variable or option).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import asyncpg

from pgqueue_enricher.cli import dashboard, embeddings, lanes_and_costs, models
from pgqueue_enricher.cli import references as references_command
from pgqueue_enricher.cli.arguments import positive_float, positive_int, uuid_arg
from pgqueue_enricher.cli.console import ProgressBar, install_signal_handlers
from pgqueue_enricher.logs import configure_logging
from pgqueue_enricher.queue import statements
from pgqueue_enricher.queue.outages import WorkerFault
from pgqueue_enricher.redact import register_settings_secrets, scrub
from pgqueue_enricher.settings import ConfigError, Settings, exit_on_config_error, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgqueue-enricher",
        description="Postgres-native queue and worker that enriches Maestro pointers (Pass 2).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="upgrade the database schema to the latest revision")
    migrate.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    migrate.add_argument(
        "--check-run-config",
        action="store_true",
        help="first check every setting `run` needs; exit 2 before touching the database if one is wrong",
    )

    run = commands.add_parser("run", help="run the worker daemon")
    run.add_argument("--concurrency", type=positive_int, help="pointers in flight (PASS2_MAX_CONCURRENT)")
    run.add_argument(
        "--poll-interval", type=positive_float, help="seconds between polls (PASS2_POLL_INTERVAL)"
    )
    run.add_argument("--worker-id", help="name shown in leases and `status` (default: host-pid-random)")
    run.add_argument("--drain", action="store_true", help="exit 0 once nothing is pending or in flight")

    status = commands.add_parser("status", help="queue counts, failures and live workers")
    status.add_argument("--json", action="store_true", help="print only JSON on stdout")
    lanes_and_costs.add_status_arguments(status)

    requeue = commands.add_parser("requeue", help="move failed pointers back to pending")
    requeue.add_argument("--project", type=uuid_arg, help="only pointers of this project")
    requeue.add_argument("--pointer", type=uuid_arg, action="append", help="only this pointer (repeatable)")
    requeue.add_argument("--error-like", help="only failures whose reason matches this ILIKE pattern")
    requeue.add_argument("--all-failed", action="store_true", help="required when no filter is given")
    lanes_and_costs.add_requeue_arguments(requeue)
    models.add_requeue_arguments(requeue)
    models.add_compare_parser(commands)
    embeddings.add_parser(commands)

    references_command.add_parser(commands, uuid_arg)

    dashboard.add_arguments(commands.add_parser("dashboard", help="the operators' web dashboard"))

    demo = commands.add_parser("demo", help="embedded Postgres, sample drawings, the whole pipeline")
    demo.add_argument(
        "--pointers", type=positive_int, default=12, help="how many sample pointers (default 12)"
    )
    demo.add_argument("--data-dir", help="where the embedded database and crops live (default .demo/)")

    doctor = commands.add_parser("doctor", help="preflight of the settings, database and providers")
    doctor.add_argument("--json", action="store_true", help="print only JSON on stdout")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "concurrency", None):
        overrides["pass2_max_concurrent"] = args.concurrency
    if getattr(args, "poll_interval", None):
        overrides["pass2_poll_interval"] = args.poll_interval
    settings = load_settings(**overrides)
    register_settings_secrets(settings)
    configure_logging(settings.log_format, settings.log_level, scope="process")
    return settings


def cmd_migrate(args: argparse.Namespace) -> int:
    from pgqueue_enricher.schema import migrations

    if args.sql:
        sys.stdout.write(migrations.upgrade_sql())
        return 0
    settings = _settings(args)
    url = settings.require_database_url()
    if args.check_run_config:
        # A deploy's pre-step (compose's migrate service, Railway's preDeployCommand): a bad
        # setting stops the deploy here, since neither platform can skip restarts on exit 2.
        settings.check_provider_config()
    from sqlalchemy.exc import DBAPIError

    try:
        before = migrations.current_revision(url)
        migrations.upgrade(url)
        after = migrations.current_revision(url)
    except migrations.MigrationError as exc:
        print(f"pgqueue-enricher: {scrub(str(exc))}", file=sys.stderr)
        return 1
    except DBAPIError as exc:
        # Typically the database cannot be reached; say so in one line, not a traceback.
        print(
            f"pgqueue-enricher: migrate could not run: {scrub(migrations.database_error_line(exc))}",
            file=sys.stderr,
        )
        return 1
    print(
        f"migrated: {before or 'base'} -> {after}"
        if before != after
        else f"already at {after}: nothing to do"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pgqueue_enricher.daemon import run_pass2_worker

    settings = _settings(args)
    settings.require_database_url()
    settings.check_provider_config()

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await run_pass2_worker(
            settings,
            stop,
            install_logging=False,  # _settings() installed it for the whole process
            worker_id=args.worker_id,
            drain=args.drain,
            on_progress=ProgressBar(),
        )

    asyncio.run(main())
    return 0


async def _with_connection(settings: Settings, work: Any) -> Any:
    conn = await asyncpg.connect(settings.require_database_url(), statement_cache_size=0, timeout=15)
    try:
        return await work(conn)
    finally:
        await conn.close()


async def _status_report(conn: asyncpg.Connection) -> dict[str, Any]:
    from pgqueue_enricher.admission import provider_state

    report = await statements.status_report(conn)
    report["providers"] = await provider_state.provider_report(conn)  # provider admission
    report["models"] = await models.model_stamps(conn)
    return report


def cmd_status(args: argparse.Namespace) -> int:
    if args.costs or args.since or args.project:
        return lanes_and_costs.status_costs(args, _settings, _with_connection)
    from pgqueue_enricher.admission.provider_state import status_lines

    settings = _settings(args)
    report = asyncio.run(_with_connection(settings, _status_report))
    for provider in report["providers"]:
        if provider["paused"]:
            provider["paused"]["reason"] = scrub(provider["paused"]["reason"] or "")
    report["failure_reasons"] = [{**r, "reason": scrub(r["reason"])} for r in report["failure_reasons"]]
    if args.json:
        print(json.dumps(report))
        return 0
    counts = report["counts"]
    print("pointers: " + ", ".join(f"{name} {counts[name]}" for name in counts))
    age = report["oldest_pending_age_s"]
    print(
        f"oldest pending: {'-' if age is None else f'{age:.0f} s'}; waiting for a retry: {report['retrying']}"
    )
    if report["processing_without_lease"]:
        print(
            f"processing without a lease (left by another tool): {report['processing_without_lease']}; "
            "rescued once they stay unchanged for PASS2_LEASE_SECONDS"
        )
    print(f"completed in the last hour: {report['completed_last_hour']}")
    print(f"live workers: {len(report['workers'])}")
    for worker in report["workers"]:
        where = f"{worker.get('host', '?')} pid {worker.get('pid', '?')}, listener {worker.get('listener_state', '?')}"
        pause = f", sees provider pause: {worker['provider_pause']}" if worker.get("provider_pause") else ""
        print(f"  {worker['worker_id']} ({where}{pause}): {worker['in_flight']} in flight")
    for line in status_lines(report["providers"]):
        print(line)
    if report["failure_reasons"]:
        print("top failure reasons:")
        for reason in report["failure_reasons"]:
            print(f"  {reason['count']:>6}  {reason['reason']}")
    lanes_and_costs.print_lanes(report["lanes"], settings)
    if report["unresolved_references"]:
        top = ", ".join(f"{r['sheet']} ({r['count']})" for r in report["unresolved_references"][:5])
        print(f"sheets referenced but not uploaded: {top} (see `pgqueue-enricher references`)")
    models.print_model_stamps(report["models"])
    return 0


def cmd_requeue(args: argparse.Namespace) -> int:
    if args.stale or args.dry_run:
        return models.requeue_stale(args, _settings, _with_connection)
    if args.lane is not None:
        return lanes_and_costs.requeue_to_lane(args, _settings, _with_connection)
    if not (args.project or args.pointer or args.error_like or args.all_failed):
        print(
            "pgqueue-enricher: requeue needs a filter (--project, --pointer, --error-like) "
            "or --all-failed to requeue every failed pointer",
            file=sys.stderr,
        )
        return 2
    settings = _settings(args)

    async def work(conn: asyncpg.Connection) -> int:
        return await statements.requeue_failed(conn, args.project, args.pointer, args.error_like)

    print(f"requeued {asyncio.run(_with_connection(settings, work))}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pgqueue_enricher.demo.command import run_demo

    return run_demo(pointers=args.pointers, data_dir=args.data_dir)


def cmd_doctor(args: argparse.Namespace) -> int:
    from pgqueue_enricher.cli import doctor

    return doctor.report(_settings(args), as_json=args.json)


COMMANDS = {
    "migrate": cmd_migrate,
    "run": cmd_run,
    "status": cmd_status,
    "requeue": cmd_requeue,
    "demo": cmd_demo,
    "doctor": cmd_doctor,
    "references": lambda args: references_command.run(args, _settings, _with_connection),
    "compare": lambda args: models.compare(args, _settings, _with_connection),
    "embeddings": lambda args: embeddings.run(args, _settings, _with_connection),
    "dashboard": lambda args: dashboard.cmd_dashboard(args, _settings),
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        exit_on_config_error(exc)
    except KeyboardInterrupt:
        return 130
    except WorkerFault as exc:
        print(f"pgqueue-enricher: {scrub(str(exc))}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        hint = ""
        if isinstance(
            exc, (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError, asyncpg.UndefinedFunctionError)
        ):
            hint = " (is the schema migrated? run `pgqueue-enricher migrate`)"
        print(f"pgqueue-enricher: {scrub(f'{type(exc).__name__}: {exc}')}{hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
