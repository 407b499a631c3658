"""Property-based API tests: each service's own OpenAPI drives schemathesis against the real
service, and every answer must be a documented status with a body matching its schema, and
never a server error.

Bounded so the five services together stay well under two minutes: MAX_EXAMPLES per operation
and generation mode (valid data, then schema-violating data), no shrinking (a failure is
recorded with its curl command, not minimised), and a time budget per service past which
each operation still gets MIN_CASES.

The stack is this module's own (started like the `shop` fixture): random orders, charges and
events must not leak into the counts other tests take from the session stack. Chaos stays
clear: an injected 503 is expected behaviour, not a bug. Admin-token chaos writes are fuzzed
WITHOUT the token (so every case answers 401 or 422 and no fault is ever set); every other
operation gets the token, so breaker resets are exercised for real.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install -e '.[dev]'")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup  # noqa: E402

from tests.integration.shopstack import SERVICES, ShopStack  # noqa: E402

MAX_EXAMPLES = 10
SERVICE_BUDGET_S = 20.0
MIN_CASES = 3  # each operation and mode gets these even past the budget
REQUEST_TIMEOUT_S = 15.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]
# Writes that set chaos: fuzzed without the admin token (see the module docstring).
TOKENLESS = {("POST", "/chaos/config"), ("PUT", "/chaos/config")}

@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


@pytest.fixture(scope="module")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopStack]:
    stack = ShopStack(tmp_path_factory.mktemp("shop-openapi")).start()
    try:
        yield stack
    finally:
        stack.stop()


def _run_operation(operation, mode: GenerationMode, base_url: str,  # noqa: ANN001
                   admin: dict[str, str], tally: Tally, stop_at: float,
                   service: str = "") -> None:
    label = f"{operation.method.upper()} {operation.path} [{mode.value}]"
    key = (operation.method.upper(), operation.path)
    headers = {} if key in TOKENLESS else admin
    checks = CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=False,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:  # noqa: ANN001
        if time.monotonic() > stop_at and tally.cases[label] >= MIN_CASES:
            return
        tally.cases[label] += 1
        try:
            response = case.call(base_url=base_url, headers=headers,
                                 timeout=REQUEST_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a request the client cannot even send
            tally.failures.append(f"{label}: could not call: {exc!r}")
            return
        tally.statuses[response.status_code] += 1
        # 413 is a rejection too (body over the size limit, documented on every route), which
        # schemathesis's negative-data check does not list: the other checks still apply.
        used = [c for c in checks if c is not negative_data_rejection] \
            if response.status_code == 413 else checks
        try:
            case.validate_response(response, checks=used, headers=headers)
        except (Failure, FailureGroup) as exc:
            curl = case.as_curl_command(headers=headers, base_url=base_url)
            tally.failures.append(f"{label} -> {response.status_code}: {exc}\n    {curl}")

    run()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("service", SERVICES)
def test_openapi_properties_hold(api_stack: ShopStack, service: str) -> None:
    base_url = api_stack.url(service)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    tally = Tally()
    stop_at = time.monotonic() + SERVICE_BUDGET_S
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 4, [op.label for op in operations]
    for operation in operations:
        modes = [GenerationMode.POSITIVE]
        # A free-form path string has no invalid value: hypothesis would spend seconds proving
        # that. Schema-violating cases need a query, header or body to violate.
        if len(operation.query) or len(operation.headers) or len(operation.body):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            try:
                _run_operation(operation, mode, base_url, api_stack.admin_headers(), tally,
                               stop_at, service)
            except Exception as exc:  # noqa: BLE001
                # Only "nothing schema-violating can be made here" is acceptable (e.g. no
                # parameters at all); anything else is a broken schema.
                if mode is GenerationMode.NEGATIVE and "Unsatisfiable" in type(exc).__name__:
                    continue
                tally.failures.append(f"{operation.label} [{mode.value}]: cannot generate "
                                      f"cases: {exc!r}")
    summary = (f"{service}: {sum(tally.cases.values())} cases, statuses "
               f"{dict(sorted(tally.statuses.items()))}")
    print(summary)
    assert not tally.failures, summary + "\n" + "\n".join(tally.failures[:25])
    assert tally.server_errors == 0, summary
    # Every operation really ran (the time budget did not silently skip any).
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path} [positive]"
        assert tally.cases[label] >= 1, f"{label} never ran; {summary}"
