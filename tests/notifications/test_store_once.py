"""registry.store on SQLite and on PostgreSQL: drafts go in a few multi-row statements, and
each (kind, recipient, cause) is stored once, whether it repeats within one call, across
calls, or across the statements' chunks."""
from sqlalchemy import select

from orglife.common.migrate import upgrade
from orglife.common.rules import load_rules
from services.notifications import registry
from services.notifications.domain import Draft
from services.notifications.models import Notification, backbone
from services.notifications.registry import Planning, SessionDirectory
from services.notifications.texts import Texts
from tests.conftest import LocalStore


def grade_notice(member_id: str) -> Draft:
    return Draft(kind="grade_notice", recipient_id=member_id, recipient_type="member",
                 cause="grade:2026", channels=["email", "in_app"], template="grade_notice",
                 context={"year": 2026, "member": {"name": "张三"},
                          "grade": {"score": 88, "grade": "excellent"}})


def test_drafts_are_stored_once_each_across_chunks_and_calls(db_url, scoring_clock):
    upgrade("notifications", db_url)
    store = LocalStore(db_url, "notifications", backbone, clock=scoring_clock)
    assert registry.ONCE_ROWS < 45  # the drafts below span several statements
    members = [f"m{n}" for n in range(45)]
    members[10:10] = members[0:5]  # 5 members twice, in the same statement as their first
    drafts = [grade_notice(member_id) for member_id in members]
    with store() as uow:
        planning = Planning(load_rules(), Texts(scoring_clock.tz), scoring_clock.tz,
                            scoring_clock.now(),
                            SessionDirectory(uow.session, False, ("email", "in_app")))
        assert registry.store(uow.session, planning, drafts) == 45
        assert registry.store(uow.session, planning, drafts[:30]) == 0
        uow.commit()
    with store.read() as uow:
        rows = uow.session.execute(select(Notification.recipient_id, Notification.channels,
                                          Notification.subject, Notification.planned_at)).all()
    store.engine.dispose()
    assert sorted(row.recipient_id for row in rows) == sorted(f"m{n}" for n in range(45))
    assert all(row.channels == ["email", "in_app"] for row in rows)  # JSON went in as JSON
    assert all("2026" in row.subject and row.planned_at is not None for row in rows)
