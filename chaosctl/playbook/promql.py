"""PromQL validation for playbooks: offline with `promtool check rules` when promtool is
installed (one run for many expressions, errors mapped back to each one), else by asking
Prometheus itself to parse them (through the client layer, chaosctl.clients.prometheus).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from chaosctl.clients.prometheus import Prometheus
from chaosctl.errors import PrometheusUnavailableError

_PROMTOOL_ERROR = re.compile(r'"e(\d+)": could not parse expression: (.*)$')


def promtool_path() -> str | None:
    return shutil.which("promtool")


def validate_with_promtool(exprs: list[str], promtool: str) -> dict[int, str]:
    """Parse every expression with `promtool check rules` (offline); {index: error}."""
    rules = [{"alert": f"e{i}", "expr": expr} for i, expr in enumerate(exprs)]
    with tempfile.TemporaryDirectory(prefix="chaosctl-promql-") as tmp:
        path = Path(tmp) / "check.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}))
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                              text=True, timeout=60)
    errors: dict[int, str] = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        match = _PROMTOOL_ERROR.search(line)
        if match:
            errors[int(match.group(1))] = match.group(2).strip()
    if proc.returncode != 0 and not errors:
        # promtool failed for a reason we cannot pin on one expression: report it on all.
        detail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["promtool failed"]
        return {i: detail[0] for i in range(len(exprs))}
    return errors


def validate_promql(exprs: list[str], prometheus_url: str | None = None) -> dict[int, str]:
    """{index: error} for the expressions that do not parse.

    promtool (offline) when installed; otherwise Prometheus at `prometheus_url` parses them.
    PrometheusUnavailableError when neither is available, since nothing can be checked.
    """
    if not exprs:
        return {}
    promtool = promtool_path()
    if promtool:
        return validate_with_promtool(exprs, promtool)
    if prometheus_url is None:
        raise PrometheusUnavailableError(
            "cannot check PromQL: promtool is not installed and no Prometheus URL was given",
            hint="install promtool (apt-get install prometheus) or start the stack",
        )
    prom = Prometheus(prometheus_url)
    errors = {}
    for i, expr in enumerate(exprs):
        error = prom.check_expr(expr)
        if error:
            errors[i] = error
    return errors
