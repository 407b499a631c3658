"""The one place that talks to Prometheus (through prometheus-api-client).

Instant queries, value extraction, an "is it up" check and PromQL validation. PromQL is
validated offline with `promtool check rules` when promtool is installed (one run for many
expressions, errors mapped back to each one), else by asking Prometheus itself to parse it.
Every failure to reach Prometheus is a PrometheusUnavailableError naming the URL.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosctl.errors import PrometheusUnavailableError

DEFAULT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Sample:
    """One series of an instant-query answer: its labels and its value (may be NaN)."""

    labels: dict[str, str] = field(default_factory=dict)
    value: float = math.nan

    def describe(self) -> str:
        shown = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()) if k != "__name__")
        return f"{{{shown}}}" if shown else ""


class PromQLError(Exception):
    """Prometheus refused an expression (bad syntax or types): a problem of the expression."""


def _float(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def samples_from_result(result: Any) -> list[Sample]:
    """Turn the `data.result` of /api/v1/query into samples (vector or scalar answers)."""
    if not result:
        return []
    # A scalar (or string) answer is a bare [timestamp, "value"] pair.
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return [Sample({}, _float(result[1]))]
    samples = []
    for item in result:
        if isinstance(item, dict) and "value" in item:
            samples.append(Sample(dict(item.get("metric") or {}), _float(item["value"][1])))
    return samples


class Prometheus:
    """A small client for the stack's Prometheus; no retries so an outage shows at once."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client: Any = None

    def _connect(self) -> Any:
        if self._client is None:
            import requests
            from prometheus_api_client import PrometheusConnect
            from urllib3.util.retry import Retry

            session = requests.Session()
            session.trust_env = False  # loopback only: never route through a proxy
            self._client = PrometheusConnect(
                url=self.url, retry=Retry(total=0), session=session, timeout=self.timeout
            )
        return self._client

    def query(self, expr: str) -> list[Sample]:
        """Evaluate `expr` now. PromQLError for a bad expression, PrometheusUnavailableError
        when Prometheus cannot be reached."""
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        try:
            result = self._connect().custom_query(expr)
        except PrometheusApiClientException as exc:
            message = str(exc)
            if "400" in message or "422" in message or "bad_data" in message:
                raise PromQLError(_api_error_text(message)) from exc
            raise PrometheusUnavailableError(
                f"Prometheus at {self.url} refused the query: {message[:200]}"
            ) from exc
        except requests.RequestException as exc:
            raise PrometheusUnavailableError(
                f"Prometheus at {self.url} cannot be reached ({type(exc).__name__})",
                hint="start the stack with `chaosctl stack up` or check CHAOSCTL_PROMETHEUS_PORT",
            ) from exc
        return samples_from_result(result)

    def value(self, expr: str) -> float | None:
        """The single value of `expr` (the largest when it returns several); None if empty."""
        values = [s.value for s in self.query(expr) if not math.isnan(s.value)]
        return max(values) if values else None

    def is_up(self) -> bool:
        """True when Prometheus answers its readiness endpoint."""
        import httpx

        try:
            response = httpx.get(f"{self.url}/-/ready", timeout=self.timeout, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def require_up(self) -> None:
        if not self.is_up():
            raise PrometheusUnavailableError(
                f"Prometheus at {self.url} is not reachable or not ready",
                hint="start the stack with `chaosctl stack up` or check CHAOSCTL_PROMETHEUS_PORT",
            )

    def check_expr(self, expr: str) -> str | None:
        """Ask Prometheus to parse and evaluate `expr`; the error text, or None when valid."""
        try:
            self.query(expr)
        except PromQLError as exc:
            return str(exc)
        return None


def _api_error_text(message: str) -> str:
    match = re.search(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"', message)
    return match.group(1).replace('\\"', '"') if match else message[:200]


# -- validation ---------------------------------------------------------------------------------

_PROMTOOL_ERROR = re.compile(r'"e(\d+)": could not parse expression: (.*)$')


def promtool_path() -> str | None:
    return shutil.which("promtool")


def validate_with_promtool(exprs: list[str], promtool: str) -> dict[int, str]:
    """Parse every expression with `promtool check rules` (offline); {index: error}."""
    import yaml

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
