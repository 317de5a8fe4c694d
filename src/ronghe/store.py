"""Where applications keep their records: SQLAlchemy on a URL, SQLite by default.

``Store(url)`` opens an engine (``sqlite:///path`` or a plain file path - the default; a
``postgresql://`` URL, through psycopg 3) and hands out transactions::

    store = Store("assist.sqlite")
    store.migrate("assist", METADATA, version=1)     # create tables, record the schema version
    with store.transaction() as conn:                # one transaction: committed on exit,
        conn.execute(insert(table).values(...))      # rolled back on an exception

Every transaction is committed before the call returns, so a reply or a feedback that was
answered is on disk even if the process is killed right after (SQLite runs in WAL mode with
``synchronous=FULL``). Migrations are kept simple: each application's tables are created if
missing and its schema version is recorded in ``ronghe_schema``; a database written by a newer
version of an application is refused instead of being misread. Passwords in URLs never reach
messages or logs (``safe_url``).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from .errors import ConfigError

SCHEMA_TABLE = "ronghe_schema"


def now() -> datetime:
    return datetime.now(timezone.utc)


_SPAN = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """'7d', '24h', '30m' (before now) or an ISO 8601 time."""
    if not text:
        return None
    now = now or datetime.now(timezone.utc)
    m = _SPAN.match(text.strip())
    if m:
        return now - timedelta(seconds=int(m[1]) * _UNITS[m[2]])
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since {text!r}: give a time like 2026-12-01T00:00Z or a span "
                          "like 24h, 7d, 30m") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def as_url(value: str | os.PathLike) -> str:
    """A database URL from a URL or a file path (a path means SQLite)."""
    text = str(value)
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL: show its scheme only
        return url.split("://", 1)[0] + "://..."


class Store:
    def __init__(self, url: str | os.PathLike, *, pool_size: int = 5):
        try:
            import sqlalchemy as sa
        except ImportError:
            raise ConfigError("storing needs SQLAlchemy: pip install 'ronghe[assist]'") from None
        self.url = as_url(url)
        try:
            parsed = sa.engine.make_url(self.url)
        except Exception:  # noqa: BLE001
            raise ConfigError(f"--db {safe_url(self.url)!r} is not a database URL; give a file "
                              "path (SQLite) or e.g. postgresql://user:pass@host/db") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(f"--db: {self.dialect} databases are not supported; use a file "
                              "path (SQLite) or a postgresql:// URL")
        kwargs: dict = {"future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_size=pool_size, pool_pre_ping=True)
        try:
            self.engine = sa.create_engine(self.url, **kwargs)
        except ModuleNotFoundError as e:
            raise ConfigError(f"--db {safe_url(self.url)}: the driver {e.name} is not installed; "
                              "pip install 'ronghe[assist]' (psycopg for PostgreSQL)"
                              ) from None
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            with self.engine.connect():
                pass
        except Exception as e:  # noqa: BLE001 - unreachable server, bad credentials ...
            raise ConfigError(f"cannot open the database {safe_url(self.url)}: "
                              f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                              ) from None

    @contextmanager
    def transaction(self) -> Iterator:
        """A connection in one transaction: committed when the block ends, else rolled back."""
        with self.engine.begin() as conn:
            yield conn

    def migrate(self, app: str, metadata, version: int) -> None:
        """Create ``metadata``'s missing tables and record ``app``'s schema ``version``; refuse
        a database whose recorded version is newer."""
        import sqlalchemy as sa

        schema = sa.Table(SCHEMA_TABLE, sa.MetaData(), sa.Column("app", sa.String(64),
                                                                 primary_key=True),
                          sa.Column("version", sa.Integer, nullable=False),
                          sa.Column("updated_at", sa.DateTime(timezone=True)))
        with self.transaction() as conn:
            schema.create(conn, checkfirst=True)
            found = conn.execute(sa.select(schema.c.version).where(schema.c.app == app)).scalar()
            if found is not None and found > version:
                raise ConfigError(f"the database {safe_url(self.url)} holds '{app}' schema "
                                  f"version {found}, newer than this ronghe's {version}; "
                                  "upgrade ronghe or use another database")
            metadata.create_all(conn, checkfirst=True)
            if found is None:
                conn.execute(sa.insert(schema).values(app=app, version=version, updated_at=now()))
            elif found < version:
                conn.execute(sa.update(schema).where(schema.c.app == app)
                             .values(version=version, updated_at=now()))

    def insert_ignore(self, conn, table, values: dict, keys: list[str]) -> bool:
        """INSERT that does nothing when a row with the same ``keys`` (a unique constraint)
        exists - the same statement on SQLite and PostgreSQL; True if the row was inserted."""
        dialect = self._dialect_module()
        stmt = (dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
                .returning(*[table.c[k] for k in keys]))
        return conn.execute(stmt).first() is not None

    def upsert(self, conn, table, values: dict, keys: list[str], update: list[str]):
        """INSERT, or UPDATE ``update`` columns of the row with the same ``keys``."""
        dialect = self._dialect_module()
        stmt = dialect.insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=keys,
                                          set_={c: stmt.excluded[c] for c in update})
        return conn.execute(stmt)

    def _dialect_module(self):
        if self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite
        from sqlalchemy.dialects import postgresql

        return postgresql

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
