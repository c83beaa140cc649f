"""meetings' migrations on a database that already holds rows, on SQLite and PostgreSQL."""
import pytest
from sqlalchemy import text

from orglife.common.db import make_engine
from orglife.common.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meetings.db'}"
    return request.getfixturevalue("pg_url")


def test_activities_logged_before_0003_get_their_branch_path(db_url):
    upgrade("meetings", db_url, revision="0002")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO org_copy (org_id, name, kind, parent_id, category, path, "
                          "version) VALUES ('b1', '石桥村党支部', 'branch', 't1', 'village', "
                          "'/c1/t1/b1/', 1)"))
        for activity_id, branch_id in (("a1", "b1"), ("a2", None), ("a3", "b-unknown")):
            conn.execute(text("INSERT INTO activities (activity_id, member_id, branch_id, kind, "
                              "held_at, source) VALUES (:a, 'm1', :b, 'volunteer', "
                              "'2026-11-01 02:00:00+00:00', 'rpc')"),
                         {"a": activity_id, "b": branch_id})
    upgrade("meetings", db_url)
    with engine.connect() as conn:
        paths = dict(conn.execute(text("SELECT activity_id, branch_path FROM activities")).all())
        receipts = conn.execute(text("SELECT count(*) FROM intake_receipts")).scalar()
    engine.dispose()
    assert paths == {"a1": "/c1/t1/b1/", "a2": None, "a3": None}
    assert receipts == 0
