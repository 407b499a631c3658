"""One SQLAlchemy engine per service: SQLite file in SHOP_DATA_DIR, or DATABASE_URL.

Tables are created on start-up and brought forward in place: a column or index that a
previous version's tables lack is added (ALTER TABLE ... ADD COLUMN, CREATE INDEX), so a
user's existing state directory keeps working after an upgrade.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
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

    __slots__ = ("sql", "binds", "_columns")

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
        self._columns: list[tuple[str, Any]] | None = None

    def columns(self, engine: Engine, stmt: Any) -> list[tuple[str, Any]]:
        """(key, result processor) per selected column, looked up once."""
        if self._columns is None:
            dialect = engine.dialect
            self._columns = [
                (column.key, column.type.dialect_impl(dialect).result_processor(dialect, None))
                for column in stmt.selected_columns]
        return self._columns

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


class _EngineTx:
    """`write` through SQLAlchemy (PostgreSQL, or SQLite in autocommit): engine.begin()."""

    __slots__ = ("_begin", "_conn")

    def __init__(self, engine: Engine) -> None:
        self._begin = engine.begin()

    def __enter__(self) -> _EngineTx:
        self._conn = self._begin.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._begin.__exit__(*exc)

    def __call__(self, stmt: Any, params: dict[str, Any]) -> int:
        return self._conn.execute(stmt, params).rowcount

    def many(self, stmt: Any, params: list[dict[str, Any]]) -> int:
        return self._conn.execute(stmt, params).rowcount if params else 0


class _SqliteTx:
    """`write` on the connection the process holds (see `write`)."""

    __slots__ = ("_engine", "_hot", "_dbapi", "_cursor")

    def __init__(self, engine: Engine, hot: _HotSqlite, dbapi: Any) -> None:
        self._engine, self._hot, self._dbapi = engine, hot, dbapi

    def __enter__(self) -> _SqliteTx:
        self._cursor = self._dbapi.cursor()
        return self

    def __exit__(self, exc_type: Any, *_exc: Any) -> None:
        try:
            if exc_type is None:
                self._dbapi.commit()
            else:
                self._dbapi.rollback()
        except BaseException:
            if exc_type is None:  # the commit failed: nothing of it may stay
                self._dbapi.rollback()
            raise
        finally:
            self._cursor.close()

    def __call__(self, stmt: Any, params: dict[str, Any]) -> int:
        """Run one statement; its rowcount."""
        prepared = self._hot.statement(self._engine, stmt)
        args = prepared.args(params)
        try:
            self._cursor.execute(prepared.sql, args)
        except self._engine.dialect.dbapi.IntegrityError as exc:
            raise IntegrityError(prepared.sql, args, exc) from exc
        return self._cursor.rowcount

    def many(self, stmt: Any, params: list[dict[str, Any]]) -> int:
        """Run one statement per parameter set (one executemany); the rows changed."""
        if not params:
            return 0
        prepared = self._hot.statement(self._engine, stmt)
        args = [prepared.args(p) for p in params]
        try:
            self._cursor.executemany(prepared.sql, args)
        except self._engine.dialect.dbapi.IntegrityError as exc:
            raise IntegrityError(prepared.sql, args, exc) from exc
        return self._cursor.rowcount


def _hot_sqlite(engine: Engine) -> _HotSqlite:
    hot = _hot.get(engine)
    if hot is None:
        hot = _hot[engine] = _HotSqlite(engine)
    return hot


def write(engine: Engine) -> _SqliteTx | _EngineTx:
    """A transaction for the per-order writes, as `with write(engine) as tx:`. `tx(statement,
    params)` runs a Core statement built once (no expanding IN) and returns its rowcount;
    `tx.many(statement, [params, ...])` runs it per parameter set. Commit at the end, rollback
    on an exception. The same code runs on PostgreSQL (engine.begin()) and SQLite.

    On SQLite the statements run, compiled once by SQLAlchemy for the dialect, on one DBAPI
    connection the process holds: SQLAlchemy's per-execution work (pool checkout, execution
    context, compiled-cache lookup, result setup) was ~60 % of a 4-statement order's database
    time (issue 13: 917 -> 373 us per create+finish in-process). SQLite calls run inline on
    the event loop (`run_db`), so the connection is never used by two transactions at once.
    A constraint violation still raises sqlalchemy.exc.IntegrityError. A class, not a
    generator context manager: that machinery was ~5 % of a payments request (third pass).
    """
    if engine.dialect.name != "sqlite":
        return _EngineTx(engine)
    hot = _hot_sqlite(engine)
    dbapi = hot.conn.driver_connection
    if dbapi.isolation_level is None:  # autocommit: commit()/rollback() would mean nothing
        return _EngineTx(engine)
    return _SqliteTx(engine, hot, dbapi)


def read(engine: Engine, stmt: Any, params: dict[str, Any] | None = None) -> list[dict]:
    """The rows of a SELECT built once (bind parameters by name), as dicts by column key.

    On SQLite it runs on the held connection of `write` (outside any transaction: a fresh
    snapshot), with SQLAlchemy's own result processing per column (e.g. DateTime from text):
    the outbox publisher's reads through a pooled Connection cost about as much as the
    writes of the orders it publishes for (issue 13, third pass)."""
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt, params or {}).mappings()]
    hot = _hot_sqlite(engine)
    prepared = hot.statement(engine, stmt)
    columns = prepared.columns(engine, stmt)
    cursor = hot.conn.driver_connection.cursor()
    try:
        rows = cursor.execute(prepared.sql, prepared.args(params or {})).fetchall()
    finally:
        cursor.close()
    return [{key: process(value) if process is not None and value is not None else value
             for (key, process), value in zip(columns, row, strict=True)} for row in rows]


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
