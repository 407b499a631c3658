"""Every service's OpenAPI document is the same bytes whatever PYTHONHASHSEED the process has.

Each document is built in fresh interpreters (one per service and hash seed, no server, no
Redis: `build()` then `openapi()`), so string hashing and set order really differ between
them. The seeds are chosen so that Python iterates {"POST", "PUT"} in a different order
under each: FastAPI took a POST+PUT route's operationId from the first element of that set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", "orders", "payments", "inventory", "notifications")

BUILD = """
import importlib, sys
app = importlib.import_module("shop." + sys.argv[1]).build()
while not hasattr(app, "openapi"):  # the gateway's app sits inside its load shedder
    app = app.app
import json
sys.stdout.write(json.dumps(app.openapi(), indent=1))
"""


def _env(seed: int, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHOP_", "CHAOSCTL_"))
           and k not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(PYTHONHASHSEED=str(seed), PYTHONPATH=str(REPO / "stack"),
               SHOP_DATA_DIR=str(data_dir))
    return env


def _set_order(seed: int) -> str:
    return subprocess.run([sys.executable, "-c", "print(list({'POST', 'PUT'}))"],
                          env={**os.environ, "PYTHONHASHSEED": str(seed)}, check=True,
                          capture_output=True, text=True, timeout=60).stdout.strip()


def _two_seeds() -> tuple[int, int]:
    """Two hash seeds under which {"POST", "PUT"} iterates in different orders."""
    first = _set_order(0)
    for seed in range(1, 64):
        if _set_order(seed) != first:
            return 0, seed
    raise AssertionError("no seed in 1..63 changes the order of {'POST', 'PUT'}")


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], bytes]:
    seeds = _two_seeds()
    data_dir = tmp_path_factory.mktemp("openapi-data")
    procs = {(service, seed): subprocess.Popen(
                 [sys.executable, "-c", BUILD, service], env=_env(seed, data_dir),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for service in SERVICES for seed in seeds}
    docs: dict[tuple[str, int], bytes] = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{key}: {err.decode(errors='replace')[-2000:]}"
        docs[key] = out
    return docs


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_document_is_identical_across_hash_seeds(
        service: str, documents: dict[tuple[str, int], bytes]) -> None:
    (_, seed_a), (_, seed_b) = sorted(k for k in documents if k[0] == service)
    a, b = documents[(service, seed_a)], documents[(service, seed_b)]
    assert a == b, (f"{service}: OpenAPI differs between PYTHONHASHSEED={seed_a} and "
                    f"{seed_b}")


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_has_its_own_id(
        service: str, documents: dict[tuple[str, int], bytes]) -> None:
    doc = json.loads(next(v for k, v in documents.items() if k[0] == service))
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()
           if isinstance(op, dict) and "operationId" in op]
    assert ids and len(ids) == len(set(ids)), sorted(ids)


@pytest.mark.parametrize("service", ("payments", "inventory"))
def test_chaos_config_keeps_both_write_methods(
        service: str, documents: dict[tuple[str, int], bytes]) -> None:
    doc = json.loads(next(v for k, v in documents.items() if k[0] == service))
    item = doc["paths"]["/chaos/config"]
    assert list(item) == ["get", "post", "put", "delete"]
    assert item["post"]["operationId"] == "set_config_chaos_config_post"
    assert item["put"]["operationId"] == "set_config_chaos_config_put"
    assert item["post"]["requestBody"] == item["put"]["requestBody"]
