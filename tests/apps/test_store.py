"""ronghe.store: URLs, migrations, portable insert-ignore / upsert, clear errors."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ronghe.errors import ConfigError
from ronghe.store import Store, as_url, safe_url

META = sa.MetaData()
T = sa.Table("t", META, sa.Column("k", sa.String(10), primary_key=True),
             sa.Column("v", sa.Integer))


def test_urls_and_errors(tmp_path):
    assert as_url(tmp_path / "a.db") == f"sqlite:///{tmp_path / 'a.db'}"
    assert as_url("postgresql://u:p@h/db") == "postgresql://u:p@h/db"
    assert "secret" not in safe_url("postgresql://user:secret@host/db")
    with pytest.raises(ConfigError, match="not supported"):
        Store("mysql://u@h/db")
    with pytest.raises(ConfigError, match="cannot open the database") as e:
        Store("postgresql://user:secret@127.0.0.1:1/db")
    assert "secret" not in str(e.value)


def test_migrate_insert_ignore_upsert(db_url):
    store = Store(db_url)
    store.migrate("demo", META, 2)
    store.migrate("demo", META, 2)  # again: nothing to do
    with store.transaction() as c:
        assert store.insert_ignore(c, T, {"k": "a", "v": 1}, ["k"]) is True
        assert store.insert_ignore(c, T, {"k": "a", "v": 2}, ["k"]) is False
        store.upsert(c, T, {"k": "b", "v": 1}, ["k"], ["v"])
        store.upsert(c, T, {"k": "b", "v": 5}, ["k"], ["v"])
    with store.transaction() as c:
        assert dict(c.execute(sa.select(T.c.k, T.c.v)).all()) == {"a": 1, "b": 5}
    with pytest.raises(RuntimeError):
        with store.transaction() as c:
            c.execute(sa.insert(T).values(k="c", v=1))
            raise RuntimeError("rolled back")
    with store.transaction() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(T)).scalar() == 2
    with pytest.raises(ConfigError, match="schema version 2, newer than this ronghe's 1"):
        store.migrate("demo", META, 1)
    store.close()
