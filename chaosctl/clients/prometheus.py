"""Prometheus instant queries, in one place, through prometheus-api-client.

Failures are told apart by what Prometheus answered, never by searching message text: the
HTTP status and the API's `errorType` of a refused query (kept by a response hook on the
session, since the library's exception carries only a message), and the requests exception
class of a query that got no answer.

- 400 `bad_data` / 422 `execution`: the expression is wrong -> `PromQLError`;
- 503 `timeout` / `canceled`, or no answer within the timeout -> `PrometheusTimeoutError`;
- nothing listening -> `PrometheusUnreachableError`;
- anything else (another status, not a Prometheus) -> `PrometheusUnavailableError`.
Both specific errors are `PrometheusUnavailableError`s, so exit codes and messages a caller
already handles stay as they were.

requests, urllib3 and prometheus-api-client are imported on the first query, not at module
level: together they cost ~250 ms CPU on the 2-core machine (median of 7, loaded, minus the
bare interpreter's), and the step registry imports this module for every command that loads
playbooks, `playbooks list` included, which never queries.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chaosctl.clients.http import http_get, require_loopback
from chaosctl.errors import PrometheusUnavailableError

if TYPE_CHECKING:
    import requests
    from prometheus_api_client import PrometheusConnect

DEFAULT_TIMEOUT_S = 3.0
START_HINT = "start the stack with `chaosctl stack up` or check CHAOSCTL_PROMETHEUS_PORT"
# errorType values of the Prometheus HTTP API (docs: "Format overview", querying/api).
EXPRESSION_ERRORS = frozenset({"bad_data", "execution"})
TIMEOUT_ERRORS = frozenset({"timeout", "canceled"})


class PromQLError(Exception):
    """Prometheus refused an expression (bad syntax or types): a problem of the expression."""


class PrometheusTimeoutError(PrometheusUnavailableError):
    """Prometheus did not finish the query in time (its own timeout or ours)."""


class PrometheusUnreachableError(PrometheusUnavailableError):
    """Nothing answered at the Prometheus URL."""


@dataclass(frozen=True)
class Series:
    """One series of an instant-query answer: its labels and its value (may be NaN)."""

    labels: dict[str, str] = field(default_factory=dict)
    value: float = math.nan

    def describe(self) -> str:
        shown = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()) if k != "__name__")
        return f"{{{shown}}}" if shown else ""


def _float(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def series_from_result(result: Any) -> list[Series]:
    """Turn the `data.result` of /api/v1/query into series (vector or scalar answers)."""
    if not result:
        return []
    # A scalar (or string) answer is a bare [timestamp, "value"] pair.
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return [Series({}, _float(result[1]))]
    return [Series(dict(item.get("metric") or {}), _float(item["value"][1]))
            for item in result if isinstance(item, dict) and "value" in item]


@dataclass(frozen=True)
class ApiFailure:
    """What Prometheus answered to a refused request."""

    status: int
    error_type: str | None
    error: str

    @classmethod
    def of(cls, response: requests.Response) -> ApiFailure:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return cls(response.status_code, None, response.text[:200])
        error_type = body.get("errorType")
        return cls(response.status_code, str(error_type) if error_type else None,
                   str(body.get("error") or "")[:300])


class Prometheus:
    """A small client for the stack's Prometheus; no retries so an outage shows at once."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = require_loopback(url.rstrip("/"), "Prometheus URL")
        self.timeout = timeout
        self._client: PrometheusConnect | None = None
        self._last = threading.local()  # the refused response of this thread's last query

    def _keep_failure(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        if response.status_code != 200:
            self._last.failure = ApiFailure.of(response)

    def _connect(self) -> PrometheusConnect:
        if self._client is None:
            import requests
            from prometheus_api_client import PrometheusConnect
            from urllib3.util.retry import Retry

            session = requests.Session()
            session.trust_env = False  # loopback only: never route through a proxy
            session.hooks["response"].append(self._keep_failure)
            self._client = PrometheusConnect(
                url=self.url, retry=Retry(total=0), session=session, timeout=self.timeout)
        return self._client

    def query(self, expr: str) -> list[Series]:
        """Evaluate `expr` now. PromQLError for a bad expression; PrometheusTimeoutError,
        PrometheusUnreachableError or PrometheusUnavailableError when Prometheus cannot
        answer it."""
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        self._last.failure = None
        try:
            result = self._connect().custom_query(expr)
        except PrometheusApiClientException as exc:
            raise self._refused(getattr(self._last, "failure", None)) from exc
        except requests.Timeout as exc:
            raise PrometheusTimeoutError(
                f"Prometheus at {self.url} did not answer within {self.timeout:g}s",
                hint="it may be overloaded; check it with `chaosctl health`") from exc
        except requests.RequestException as exc:
            raise PrometheusUnreachableError(
                f"Prometheus at {self.url} cannot be reached ({type(exc).__name__})",
                hint=START_HINT) from exc
        return series_from_result(result)

    def _refused(self, failure: ApiFailure | None) -> Exception:
        if failure is None:  # the library refused an answer that our hook did not see
            return PrometheusUnavailableError(f"Prometheus at {self.url} refused the query")
        if failure.error_type in EXPRESSION_ERRORS or failure.status in (400, 422):
            return PromQLError(failure.error or f"HTTP {failure.status}")
        kind = f"HTTP {failure.status}" + (f", {failure.error_type}" if failure.error_type else "")
        if failure.error_type in TIMEOUT_ERRORS:
            return PrometheusTimeoutError(
                f"Prometheus at {self.url} gave up on the query ({kind}): {failure.error}")
        return PrometheusUnavailableError(
            f"Prometheus at {self.url} refused the query ({kind}): {failure.error}")

    def value(self, expr: str) -> float | None:
        """The single value of `expr` (the largest when it returns several); None if empty."""
        values = [s.value for s in self.query(expr) if not math.isnan(s.value)]
        return max(values) if values else None

    def is_up(self) -> bool:
        """True when Prometheus answers its readiness endpoint."""
        answer = http_get(f"{self.url}/-/ready", timeout=self.timeout)
        return answer is not None and answer[0] == 200

    def require_up(self) -> None:
        if not self.is_up():
            raise PrometheusUnreachableError(
                f"Prometheus at {self.url} is not reachable or not ready", hint=START_HINT)

    def check_expr(self, expr: str) -> str | None:
        """Ask Prometheus to parse and evaluate `expr`; the error text, or None when valid."""
        try:
            self.query(expr)
        except PromQLError as exc:
            return str(exc)
        return None
