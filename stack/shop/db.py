"""One SQLAlchemy engine per service: SQLite file in SHOP_DATA_DIR, or DATABASE_URL."""

from __future__ import annotations

from sqlalchemy import Engine, MetaData, create_engine, event

from shop.settings import ShopSettings


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


def create_tables(engine: Engine, metadata: MetaData) -> None:
    # Replicas start together; creating tables twice must not fail either of them.
    try:
        metadata.create_all(engine)
    except Exception:  # noqa: BLE001 - a concurrent creator won; check it really exists
        metadata.create_all(engine)
