"""`pgqueue-enricher doctor [--json]`: the preflight's output and exit code.

Exit 0 when every check passes, 1 when one fails, 2 for a configuration error (raised as
ConfigError before any check runs, and reported by cli.main like every other command's).
"""

from __future__ import annotations

import asyncio
import json

from pgqueue_enricher.ops.doctor import Check, run_checks
from pgqueue_enricher.settings import Settings

PASS_MARK = "✓"
FAIL_MARK = "✗"


def line(check: Check) -> str:
    """One line per check; a failed one carries the sentence that fixes it."""
    if check.ok:
        return f"{PASS_MARK} {check.name}: {check.detail}"
    return f"{FAIL_MARK} {check.name}: {check.detail}. Fix: {check.fix}"


def render(checks: list[Check], *, as_json: bool) -> tuple[str, int]:
    """What doctor prints for these checks, and its exit code."""
    ok = all(check.ok for check in checks)
    if as_json:
        text = json.dumps({"checks": [check.as_json() for check in checks], "ok": ok}, ensure_ascii=False)
    else:
        passed = sum(check.ok for check in checks)
        summary = f"all {len(checks)} checks passed" if ok else f"{passed} of {len(checks)} checks passed"
        text = "\n".join([*(line(check) for check in checks), summary])
    return text, 0 if ok else 1


def report(settings: Settings, *, as_json: bool) -> int:
    """Run the checks, print them, and return the exit code (ConfigError propagates: exit 2)."""
    text, code = render(asyncio.run(run_checks(settings)), as_json=as_json)
    print(text)
    return code
