"""Engine, unit of work and schema migrations.

SQLite (the embedded default) gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` so that
concurrent writers queue instead of failing half-way; PostgreSQL is used as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from breachflow.models.notification import sha256_hex

MIGRATIONS = Path(__file__).parent / "migrations"
#: ``session.info`` key: ``{incident id: stage}`` for the incidents whose stage changed in a
#: unit of work, handed to :attr:`Database.after_stage` once it has committed.
STAGED = "breach.staged"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" below take over
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MB: imports insert random index keys
        cursor.close()
        # What PostgreSQL has built in and queueing computes in SQL (Notification keys).
        dbapi_conn.create_function("breach_sha256_hex", 1, sha256_hex, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """One engine and its session factory; ``unit_of_work`` commits or rolls back whole."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        parsed = make_url(url)
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, object] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if schema:  # tests isolate themselves in a PostgreSQL schema
            kwargs["connect_args"] = {"options": f"-csearch_path={schema}"}
        self.engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_setup(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: Called with ``{incident id: stage}`` after a unit of work that changed a stage
        #: has committed (the timeline's checkpoints, :mod:`models.anchor`); never before,
        #: so nothing outside the database records a head that was rolled back.
        self.after_stage: Callable[[dict[int, str]], None] | None = None

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        with self._sessions() as session:
            with session.begin():
                yield session
            staged = session.info.pop(STAGED, None)
        if staged and self.after_stage is not None:
            self.after_stage(staged)

    def _alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        return config

    def upgrade(self) -> None:
        """Bring the schema to the newest migration; cheap when it is already there."""
        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()
        with self.engine.connect() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
        with self.engine.begin() as conn:
            config = self._alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()
