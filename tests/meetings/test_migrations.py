"""meetings' migrations on a database that already holds rows, on SQLite and PostgreSQL."""
import pytest
from sqlalchemy import text

from orglife.common.db import make_engine
from orglife.common.errors import NotFound
from orglife.common.migrate import upgrade


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


def test_get_intake_answers_for_reports_handled_before_0003(db_url, clock):
    """Reports handled before intake receipts existed (0003): an accepted one is answered as
    accepted (what it became was not recorded, so only a county-wide caller may see it),
    not "never received"; a rejected and a waiting one as before."""
    import json
    from datetime import datetime, timezone
    from nameko.testing.services import worker_factory
    from orglife.common.errors import Forbidden
    from orglife.common.rules import load_rules
    from services.meetings.models import backbone
    from services.meetings.roster import RosterCache
    from services.meetings.service import MeetingsService
    from tests.conftest import LocalStore, auth_as
    upgrade("meetings", db_url, revision="0002")
    engine = make_engine(db_url)
    at = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO org_copy (org_id, name, kind, parent_id, category, path, "
                          "version) VALUES ('b1', '石桥村党支部', 'branch', 't1', 'village', "
                          "'/c1/t1/b1/', 1)"))
        for event_id, event_type in (("ev-accepted", "meeting_reported"),
                                     ("ev-rejected", "meeting_reported"),
                                     ("ev-waiting", "meeting_reported"),
                                     ("ev-member", "member_registered")):
            conn.execute(text("INSERT INTO inbox (event_id, event_type, source, handled_at) "
                              "VALUES (:e, :t, :s, :at)"),
                         {"e": event_id, "t": event_type, "at": at,
                          "s": "members" if event_type == "member_registered" else "intake"})
        conn.execute(text("INSERT INTO rejected_intake (event_id, event_type, body, reasons, "
                          "rejected_at, branch_path) VALUES ('ev-rejected', 'meeting_reported', "
                          ":b, :r, :at, '/c1/t1/b1/')"),
                     {"b": json.dumps({"branch_id": "b1", "type": "picnic"}),
                      "r": json.dumps({"type": ["Must be one of ..."]}), "at": at})
        conn.execute(text("INSERT INTO pending_intake (event_id, event_type, body, received_at, "
                          "deadline, missing) VALUES ('ev-waiting', 'meeting_reported', :b, :at, "
                          ":d, :m)"),
                     {"b": json.dumps({"branch_id": "b1", "type": "lecture"}), "at": at,
                      "d": at.timestamp() + 300, "m": json.dumps(["late"])})
    engine.dispose()
    upgrade("meetings", db_url)
    store = LocalStore(db_url, "meetings", backbone, clock)

    def worker(role="county_admin", org_id=None):
        return worker_factory(MeetingsService, store=store, auth=auth_as(role, org_id),
                              clock=clock, rules=load_rules(), rosters=RosterCache())
    admin, secretary = worker(), worker("branch_secretary", "b1")
    try:
        assert admin.get_intake("ev-accepted") == {
            "event_id": "ev-accepted", "event_type": "meeting_reported", "status": "accepted",
            "meeting_id": None, "accepted_at": "2026-11-01T02:00:00+00:00"}
        with pytest.raises(Forbidden):
            secretary.get_intake("ev-accepted")
        assert secretary.get_intake("ev-rejected")["status"] == "rejected"
        assert secretary.get_intake("ev-waiting") | {"event_id": None} == {
            "event_id": None, "event_type": "meeting_reported", "status": "waiting",
            "missing": ["late"], "received_at": "2026-11-01T02:00:00+00:00",
            "deadline": "2026-11-01T02:05:00+00:00"}
        for not_intake in ("ev-member", "never-sent"):
            with pytest.raises(NotFound):
                admin.get_intake(not_intake)
    finally:
        store.engine.dispose()


def test_0005_drops_the_attendance_index_no_read_uses_rows_kept_downgrade_restores_it(db_url):
    """0005: attendance loses its index by member (no read of meetings uses it; every row
    paid for it), keeps its rows and is still read by meeting; the downgrade restores it."""
    from alembic import command
    from sqlalchemy import inspect
    from orglife.common.migrate import alembic_config
    upgrade("meetings", db_url, revision="0004")
    engine = make_engine(db_url)

    def indexes():
        return sorted(ix["name"] for ix in inspect(engine).get_indexes("attendance"))
    try:
        with engine.begin() as conn:
            for member_id in ("m1", "m2"):
                conn.execute(text("INSERT INTO attendance (meeting_id, member_id, status, remote, "
                                  "expected, visiting) VALUES ('mt1', :m, 'present', false, "
                                  "true, false)"), {"m": member_id})
        assert indexes() == ["ix_attendance_member"]
        upgrade("meetings", db_url)
        assert indexes() == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT member_id FROM attendance WHERE meeting_id = 'mt1' "
                                     "ORDER BY member_id")).scalars().all() == ["m1", "m2"]
        command.downgrade(alembic_config("services.meetings", db_url), "0004")
        assert indexes() == ["ix_attendance_member"]
    finally:
        engine.dispose()
