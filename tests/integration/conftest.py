"""Fixtures for integration tests: the shop stack as real processes on real Redis.

`shop` (session) — redis-server (own temp dir, `--save ""`, loopback) and the five services
started with `python -m shop.serve NAME --port P` on free ports, SQLite in a temp data dir;
every process is stopped by its PID at the end of the session. It is a `ShopStack`
(tests/integration/shopstack.py): `url(name)`, `redis_url`, `admin_headers()`, `ports`,
`spawn(name, env)` for an extra process, `kill9(name)`, `restart(name)`, `metrics_text(name)`.

`shop_pg` (session) — the same stack on a throwaway PostgreSQL 15 cluster (initdb on a free
port, torn down by PID); skipped with the reason when the server binaries are missing.

`stack` — `shop`, settled: no chaos, breakers closed, inventory idle, before and after the test.
`any_stack` — parametrized over sqlite and postgres (`@pytest.mark.postgres` on the latter),
settled the same way: the order-flow and outbox tests use it to run on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.shopstack import PostgresCluster, ShopStack, postgres_unavailable
from tests.support import mark_directory, wait_for


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test in this folder is `integration` (real servers, no CLI stack).
    mark_directory(items, Path(__file__).parent, "integration")


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopStack]:
    stack = ShopStack(tmp_path_factory.mktemp("shop-sqlite")).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def shop_pg(pg_cluster: PostgresCluster,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopStack]:
    stack = ShopStack(tmp_path_factory.mktemp("shop-pg"), database_url=pg_cluster.url).start()
    try:
        yield stack
    finally:
        stack.stop()


def settle(stack: ShopStack) -> None:
    """Undo what a test may have left: chaos keys, open breakers, queued inventory locks."""
    with httpx.Client(timeout=10) as client:
        for service in ("payments", "inventory"):
            response = client.delete(f"{stack.url(service)}/chaos/config")
            assert response.status_code == 200, response.text
        for downstream in ("orders", "payments", "inventory", "notifications"):
            response = client.post(
                f"{stack.url('gateway')}/status/breakers/{downstream}/reset",
                headers=stack.admin_headers())
            assert response.status_code == 200, response.text

        def inventory_idle() -> bool:
            deps = client.get(f"{stack.url('inventory')}/health").json()["dependencies"]
            return deps.get("lock_waiters", 0) == 0

        wait_for(inventory_idle, timeout=60, what="inventory lock queue to drain")


@pytest.fixture
def stack(shop: ShopStack) -> Iterator[ShopStack]:
    settle(shop)
    yield shop
    settle(shop)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_stack(request: pytest.FixtureRequest) -> Iterator[ShopStack]:
    chosen: ShopStack = request.getfixturevalue("shop" if request.param == "sqlite"
                                                else "shop_pg")
    settle(chosen)
    yield chosen
    settle(chosen)
