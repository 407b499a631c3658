"""One SQLAlchemy engine per service: SQLite file in SHOP_DATA_DIR, or DATABASE_URL.

Tables are created on start-up and brought forward in place: a column or index that a
previous version's tables lack is added (ALTER TABLE ... ADD COLUMN, CREATE INDEX), so a
user's existing state directory keeps working after an upgrade.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Column, Engine, MetaData, Table, create_engine, event, inspect, text
from sqlalchemy.exc import IntegrityError

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


class _Prepared:
    """A Core statement compiled once for SQLite: its SQL, and per positional parameter the
    name it is looked up by, the value when absent (a literal or the column default) and the
    type's bind processor (e.g. DateTime to SQLite's text)."""

    __slots__ = ("sql", "binds")

    def __init__(self, engine: Engine, stmt: Any) -> None:
        compiled = stmt.compile(dialect=engine.dialect)
        table = getattr(stmt, "table", None)
        self.sql = compiled.string
        self.binds: list[tuple[str, Any, Any]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            absent = bind.value
            column = table.c.get(name) if table is not None else None
            if absent is None and column is not None and column.default is not None \
                    and column.default.is_scalar:
                absent = column.default.arg
            process = bind.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
            self.binds.append((name, absent, process))

    def args(self, params: dict[str, Any]) -> tuple:
        out = []
        for name, absent, process in self.binds:
            value = params.get(name, absent)
            out.append(process(value) if process is not None and value is not None else value)
        return tuple(out)


class _HotSqlite:
    """One DBAPI connection held by the process for the per-order writes (see `write`)."""

    def __init__(self, engine: Engine) -> None:
        self.conn = engine.raw_connection()  # through the pool: the PRAGMAs apply
        self.prepared: dict[int, tuple[Any, _Prepared]] = {}

    def statement(self, engine: Engine, stmt: Any) -> _Prepared:
        hit = self.prepared.get(id(stmt))
        if hit is None or hit[0] is not stmt:
            hit = self.prepared[id(stmt)] = (stmt, _Prepared(engine, stmt))
        return hit[1]


_hot: weakref.WeakKeyDictionary[Engine, _HotSqlite] = weakref.WeakKeyDictionary()


@contextmanager
def write(engine: Engine) -> Iterator[Callable[[Any, dict[str, Any]], int]]:
    """A transaction for the per-order writes: `tx(statement, params)` runs a Core statement
    built once (no expanding IN) and returns its rowcount; commit at the end, rollback on an
    exception. The same code runs on PostgreSQL (engine.begin()) and SQLite.

    On SQLite the statements run, compiled once by SQLAlchemy for the dialect, on one DBAPI
    connection the process holds: SQLAlchemy's per-execution work (pool checkout, execution
    context, compiled-cache lookup, result setup) was ~60 % of a 4-statement order's database
    time (issue 13: 917 -> 373 us per create+finish in-process). SQLite calls run inline on
    the event loop (`run_db`), so the connection is never used by two transactions at once.
    A constraint violation still raises sqlalchemy.exc.IntegrityError.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield lambda stmt, params: conn.execute(stmt, params).rowcount
        return
    hot = _hot.get(engine)
    if hot is None:
        hot = _hot[engine] = _HotSqlite(engine)
    dbapi = hot.conn.driver_connection
    if dbapi.isolation_level is None:  # autocommit: commit()/rollback() would mean nothing
        with engine.begin() as conn:
            yield lambda stmt, params: conn.execute(stmt, params).rowcount
        return
    cursor = dbapi.cursor()

    def tx(stmt: Any, params: dict[str, Any]) -> int:
        prepared = hot.statement(engine, stmt)
        args = prepared.args(params)
        try:
            cursor.execute(prepared.sql, args)
        except engine.dialect.dbapi.IntegrityError as exc:
            raise IntegrityError(prepared.sql, args, exc) from exc
        return cursor.rowcount

    try:
        yield tx
        dbapi.commit()
    except BaseException:
        dbapi.rollback()
        raise
    finally:
        cursor.close()


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
