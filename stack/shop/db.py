"""One SQLAlchemy engine per service: SQLite file in SHOP_DATA_DIR, or DATABASE_URL.

Tables are created on start-up and brought forward in place: a column or index that a
previous version's tables lack is added (ALTER TABLE ... ADD COLUMN, CREATE INDEX), so a
user's existing state directory keeps working after an upgrade.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Column, Engine, MetaData, Table, create_engine, event, inspect, text

from shop.settings import ShopSettings

log = logging.getLogger("shop.db")
T = TypeVar("T")


async def run_db(engine: Engine, fn: Callable[..., T], *args: Any) -> T:
    """Run a small synchronous database function from async code.

    SQLite (a local file, WAL, statements of tens of microseconds) runs inline: the hop to a
    worker thread and back cost more CPU than the transactions themselves (issue 13's
    profile). A networked database (PostgreSQL) goes to the thread pool, so a slow round
    trip never stalls the event loop.
    """
    if engine.dialect.name == "sqlite":
        return fn(*args)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def make_engine(settings: ShopSettings) -> Engine:
    if settings.database_url:
        url = settings.database_url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / f"{settings.service}.db"
    engine = create_engine(
        f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
        # WAL lets replicas and the outbox publisher read while another writes;
        # busy_timeout makes concurrent writers queue instead of failing.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


def create_tables(engine: Engine, metadata: MetaData) -> list[str]:
    """Create missing tables, then add what older tables lack; returns "table.column" names
    of the columns added (the caller may backfill them)."""
    # Replicas start together; creating tables twice must not fail either of them.
    try:
        metadata.create_all(engine)
    except Exception:  # noqa: BLE001 - a concurrent creator won; check it really exists
        metadata.create_all(engine)
    added: list[str] = []
    for table in metadata.sorted_tables:
        added += [f"{table.name}.{name}" for name in _add_missing_columns(engine, table)]
        _add_missing_indexes(engine, table)
    return added


def _column_ddl(engine: Engine, table: Table, column: Column) -> str:
    kind = column.type.compile(dialect=engine.dialect)
    ddl = f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"
    default = column.server_default
    if default is not None:
        value = getattr(default, "arg", None)
        if not isinstance(value, str):
            raise TypeError(f"{table.name}.{column.name}: only string server defaults migrate")
        ddl += " DEFAULT '" + value.replace("'", "''") + "'"
    if not column.nullable:
        if default is None:
            raise TypeError(f"{table.name}.{column.name}: a NOT NULL column added to an "
                            "existing table needs a server_default")
        ddl += " NOT NULL"
    return ddl


def _add_missing_columns(engine: Engine, table: Table) -> list[str]:
    have = {c["name"] for c in inspect(engine).get_columns(table.name)}
    added = []
    for column in table.columns:
        if column.name in have:
            continue
        try:
            with engine.begin() as conn:
                conn.execute(text(_column_ddl(engine, table, column)))
        except Exception:  # noqa: BLE001 - another replica may have added it first
            if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                raise
            continue
        log.warning("migrated %s: added column %s", table.name, column.name)
        added.append(column.name)
    return added


def _add_missing_indexes(engine: Engine, table: Table) -> None:
    have = {ix["name"] for ix in inspect(engine).get_indexes(table.name)}
    for index in table.indexes:
        if index.name in have:
            continue
        try:
            index.create(engine, checkfirst=True)
        except Exception:  # noqa: BLE001 - a concurrent replica created it; check once more
            if index.name not in {ix["name"] for ix in inspect(engine).get_indexes(table.name)}:
                raise
