"""The shipped recording rules under promtool's rule unit tests (real Prometheus evaluation):
a total outage reads 0 even when the `completed` series is missing, no traffic yields no
value (neither an outage nor healthy), and healthy traffic reads 1."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chaosctl.resources import stack_dir

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
RULES = stack_dir() / "prometheus" / "rules" / "recording.yml"


def _case(series: dict[str, str], expr: str, expected: list[float]) -> dict:
    return {
        "interval": "1s",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "promql_expr_test": [{
            "expr": expr, "eval_time": "20s",
            "exp_samples": [{"labels": expr, "value": v} for v in expected],
        }],
    }


def run_promtool(tmp_path: Path, *cases: dict) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "rules_test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(RULES)],
                                         "evaluation_interval": "1s", "tests": list(cases)}))
    return subprocess.run(["promtool", "test", "rules", str(test_file)], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("name", "series", "expected"), [
    # After a restart nothing has completed yet: only the failure series exists.
    ("total outage, no completed series", {'orders_total{status="inventory_failed"}': "0+5x30"},
     [0.0]),
    ("total outage, completed at 0", {'orders_total{status="completed"}': "0+0x30",
                                      'orders_total{status="payment_failed"}': "0+5x30"}, [0.0]),
    ("half fail", {'orders_total{status="completed"}': "0+5x30",
                   'orders_total{status="payment_failed"}': "0+5x30"}, [0.5]),
    ("healthy", {'orders_total{status="completed"}': "0+5x30",
                 'orders_total{status="payment_failed"}': "0+0x30"}, [1.0]),
    # 0/0: no value at all, so no playbook reads it as below or above 95 %.
    ("no traffic", {'orders_total{status="completed"}': "7+0x30",
                    'orders_total{status="payment_failed"}': "3+0x30"}, []),
])
def test_order_success_rate(tmp_path: Path, name: str, series: dict[str, str],
                            expected: list[float]) -> None:
    result = run_promtool(tmp_path, _case(series, "order_success_rate", expected))
    assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize(("series", "expected"), [
    ({'http_requests_total{service="gateway",code="201"}': "0+5x30"}, [0.0]),
    ({'http_requests_total{service="gateway",code="201"}': "0+5x30",
      'http_requests_total{service="gateway",code="503"}': "0+5x30"}, [0.5]),
    ({'http_requests_total{service="gateway",code="201"}': "4+0x30"}, []),
])
def test_http_req_failed_rate(tmp_path: Path, series: dict[str, str],
                              expected: list[float]) -> None:
    result = run_promtool(tmp_path, _case(series, "http_req_failed_rate", expected))
    assert result.returncode == 0, result.stdout + result.stderr
