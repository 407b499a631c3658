"""The game day refuses to start when it could not read the databases it checks at the end:
an integrity check against an empty SQLite file it created itself would prove nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosctl.config import load_settings
from chaosctl.gameday.integrity import unreadable

NAMES = ("orders", "payments", "inventory", "notifications")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CHAOSCTL_DATABASE_URL", "CHAOSCTL_BACKEND", "CHAOSCTL_HOME"):
        monkeypatch.delenv(var, raising=False)


def test_every_database_file_present_is_readable(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for name in NAMES:
        (tmp_path / "data" / f"{name}.db").write_bytes(b"")
    assert unreadable(load_settings(home=tmp_path)) is None


def test_a_missing_file_is_named_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.db").write_bytes(b"")
    problem = unreadable(load_settings(home=tmp_path))
    assert problem and "payments.db, inventory.db, notifications.db" in problem
    assert "CHAOSCTL_HOME" in problem
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["orders.db"]


def test_on_kubernetes_it_says_where_the_data_is_and_what_to_do(tmp_path: Path) -> None:
    problem = unreadable(load_settings(home=tmp_path, backend="kubernetes"))
    assert problem and "cluster's volume" in problem and "CHAOSCTL_DATABASE_URL" in problem


def test_one_postgresql_database_is_left_to_the_connection(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, backend="kubernetes",
                             database_url="postgresql://shop@127.0.0.1:5432/shop")
    assert unreadable(settings) is None
