"""Data that must never be damaged (issue 7 §1): what an import leaves out, people sharing a
phone, a meeting and an activity sharing an id, concurrent writers, archived members' branch
history."""
import subprocess
import sys

import pytest
from sqlalchemy import text

from orglife.common.envelope import Envelope
from services.members import domain
from tests.members.conftest import small_county

PHONE = "13800138000"
FULL = {"member_id": "m1", "name": "张伟", "branch": "石桥村党支部", "group": "第一党小组",
        "status": "probationary", "committee_member": "是", "no_vote": "是", "mobile": "是",
        "mobile_location": "广东省深圳市", "phone": PHONE, "email": "zw@example.com",
        "joined_on": "2025-07-01"}


@pytest.fixture
def admin(members_worker):
    worker = members_worker()
    small_county(worker)
    return worker


def kept(member):
    return {k: member[k] for k in ("status", "committee_member", "no_vote", "mobile",
                                   "mobile_location", "group_id", "email", "joined_on")}


# -- import: what the sheet leaves out -----------------------------------------------------------
@pytest.mark.parametrize("second", [
    {"name": "张伟", "branch": "石桥村党支部", "phone": PHONE},  # found by name and phone
    {"member_id": "m1", "name": "张伟", "branch": "b1", "phone": PHONE},  # named by id
    {"member_id": "m1", "name": "张伟", "branch": "b1", "phone": PHONE, "group": "",  # empty cells
     "status": None, "committee_member": "", "no_vote": None, "mobile": "", "email": " ",
     "mobile_location": "", "joined_on": None},
], ids=["identity", "member_id", "empty-cells"])
def test_a_sheet_with_fewer_columns_changes_nothing_it_leaves_out(admin, members_store, second):
    assert admin.import_members([FULL])["created"] == ["m1"]
    before = admin.get_member("m1")
    result = admin.import_members([second])
    assert result["errors"] == [] and result["created"] == [] and result["unchanged"] == ["m1"]
    after = admin.get_member("m1")
    assert kept(after) == kept(before) == {
        "status": "probationary", "committee_member": True, "no_vote": True, "mobile": True,
        "mobile_location": "广东省深圳市", "group_id": "g1", "email": "zw@example.com",
        "joined_on": "2025-07-01"}
    assert after["version"] == 1
    assert admin.list_members({})["total"] == 1


def test_a_sheet_changes_only_the_cells_it_fills(admin):
    admin.import_members([FULL])
    result = admin.import_members([{"name": "张伟", "branch": "b1", "phone": PHONE,
                                    "status": "formal"}])
    assert result["updated"] == ["m1"]
    member = admin.get_member("m1")
    assert member["status"] == "formal" and member["version"] == 2
    assert member["committee_member"] is True and member["group_id"] == "g1"


def test_a_new_member_gets_the_defaults(admin):
    [member_id] = admin.import_members([{"name": "李娜", "branch": "b2"}])["created"]
    member = admin.get_member(member_id)
    assert (member["status"], member["committee_member"], member["no_vote"], member["mobile"],
            member["group_id"], member["phone"]) == ("formal", False, False, False, None, None)


# -- import: identity ----------------------------------------------------------------------------
def test_two_people_sharing_a_phone_are_two_members(admin):
    [husband] = admin.import_members([{"name": "张伟", "branch": "b1", "phone": PHONE}])["created"]
    result = admin.import_members([{"name": "李娜", "branch": "b1", "phone": PHONE}])
    assert result["updated"] == [] and len(result["created"]) == 1
    wife = result["created"][0]
    assert wife != husband
    assert admin.get_member(husband)["name"] == "张伟"
    assert admin.get_member(wife)["name"] == "李娜"
    again = admin.import_members([{"name": "张伟", "branch": "b1", "phone": PHONE},
                                  {"name": "李娜", "branch": "b1", "phone": PHONE}])
    assert sorted(again["unchanged"]) == sorted([husband, wife]) and again["created"] == []


def test_without_a_phone_identity_is_name_and_branch(admin):
    [first] = admin.import_members([{"name": "王芳", "branch": "b1"}])["created"]
    result = admin.import_members([{"name": "王芳", "branch": "b1", "committee_member": "是"},
                                   {"name": "王芳", "branch": "b2"}])
    assert result["updated"] == [first] and len(result["created"]) == 1
    assert admin.get_member(first)["committee_member"] is True


def test_a_phone_added_or_changed_since_is_not_a_new_member(admin):
    """王芳 was imported without a phone; a later sheet gives her one. Same name, same branch,
    no identity match: the same person or a namesake, which the row must say (no duplicate)."""
    [first] = admin.import_members([{"name": "王芳", "branch": "b1"}])["created"]
    result = admin.import_members([{"name": "王芳", "branch": "b1", "phone": "13900139000"}])
    [error] = result["errors"]
    assert error["field"] == "member_id" and first in error["message"]
    assert result["created"] == [] and admin.list_members({"q": "王芳"})["total"] == 1
    assert admin.import_members([{"member_id": first, "name": "王芳", "branch": "b1",
                                  "phone": "13900139000"}])["updated"] == [first]
    namesake = admin.import_members([{"member_id": "wf-new", "name": "王芳", "branch": "b1"}])
    assert namesake["created"] == ["wf-new"]  # a second 王芳, on purpose


def test_a_scoped_import_never_names_members_outside_its_scope(admin, members_worker):
    admin.register_member({"member_id": "secret-1", "name": "张伟", "branch_id": "b2",
                           "phone": PHONE})
    admin.register_member({"member_id": "secret-2", "name": "张伟", "branch_id": "b2",
                           "phone": PHONE})
    township = members_worker("township_admin", "t1")
    result = township.import_members([{"name": "张伟", "branch": "b1", "phone": PHONE}])
    assert result["errors"] == [] and len(result["created"]) == 1  # t1's own 张伟
    assert "secret" not in str(result)


def test_an_ambiguous_match_is_an_error_naming_the_row(admin, members_store):
    for member_id in ("wf-1", "wf-2"):
        admin.register_member({"member_id": member_id, "name": "王芳", "branch_id": "b1"})
    admin.register_member({"member_id": "zw-1", "name": "张伟", "branch_id": "b1", "phone": PHONE})
    admin.register_member({"member_id": "zw-2", "name": "张伟", "branch_id": "b2", "phone": PHONE})
    events = len(members_store.outbox_events())
    result = admin.import_members([{"name": "王芳", "branch": "b1", "committee_member": "是"},
                                   {"name": "张伟", "branch": "b1", "phone": PHONE},
                                   {"member_id": "wf-2", "name": "王芳", "branch": "b1",
                                    "committee_member": "是"}])
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(1, "member_id"),
                                                                  (2, "member_id")]
    assert "2 members match" in result["errors"][0]["message"]
    assert "wf-1" in result["errors"][0]["message"] and "member_id" in result["errors"][0]["message"]
    assert result["created"] == [] and result["updated"] == ["wf-2"]
    assert admin.list_members({})["total"] == 4
    assert len(members_store.outbox_events()) == events + 1


def test_a_member_with_an_id_generated_from_the_phone_is_found_again(admin):
    legacy = "m-" + domain.uuid.uuid5(domain.MEMBER_ID_NAMESPACE, f"phone:{PHONE}").hex[:16]
    admin.register_member({"member_id": legacy, "name": "张伟", "branch_id": "b1", "phone": PHONE})
    result = admin.import_members([{"name": "张伟", "branch": "b1", "phone": PHONE,
                                    "committee_member": "是"}])
    assert result["updated"] == [legacy] and result["created"] == []
    spouse = admin.import_members([{"name": "李娜", "branch": "b1", "phone": PHONE}])
    assert len(spouse["created"]) == 1 and spouse["created"][0] != legacy
    assert admin.get_member(legacy)["name"] == "张伟"


def test_a_generated_id_held_by_someone_else_is_not_taken(admin):
    taken = domain.generated_member_id({"name": "赵敏", "phone": PHONE, "branch_id": "b1"})
    admin.register_member({"member_id": taken, "name": "赵敏敏", "branch_id": "b1",
                           "phone": PHONE})  # renamed since: no longer 赵敏 with that phone
    [created] = admin.import_members([{"name": "赵敏", "branch": "b1", "phone": PHONE}])["created"]
    assert created != taken and created.startswith("m-")
    assert admin.get_member(taken)["name"] == "赵敏敏"


def test_the_same_person_twice_in_one_call_is_an_error(admin):
    result = admin.import_members([{"name": "王芳", "branch": "b1", "phone": "13900139000"},
                                   {"name": "王芳", "branch": "b1", "phone": "13900139000"},
                                   {"name": "陈静", "branch": "b3"},
                                   {"name": "陈静", "branch": "b3", "committee_member": "是"}])
    assert [(e["row"], e["message"]) for e in result["errors"]] == [
        (2, "the same member as row 1"), (4, "the same member as row 3")]
    assert len(result["created"]) == 2


def test_identity_never_moves_a_member_between_branches(admin):
    admin.import_members([FULL])
    result = admin.import_members([{"name": "张伟", "branch": "b2", "phone": PHONE}])
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(1, "branch")]
    assert "transfer" in result["errors"][0]["message"]
    assert admin.get_member("m1")["branch_id"] == "b1" and result["created"] == []


# -- archiving closes the branch history -------------------------------------------------------
@pytest.mark.parametrize("status", ["removed", "deceased"])
def test_archiving_a_member_closes_the_branch_history(admin, status):
    admin.register_member({"member_id": "m1", "name": "张伟", "branch_id": "b1",
                           "joined_on": "2010-07-01"})
    admin.update_member({"member_id": "m1", "status": status})
    assert admin.get_member("m1")["branch_history"] == [
        {"branch_id": "b1", "since": "2010-07-01", "until": "2026-11-20"}]


# -- participation: a meeting and an activity with the same id ---------------------------------
def meeting_logged(ref, attendance, non_members=()):
    return Envelope.new("meetings", "meeting_logged", {
        "meeting_id": ref, "branch_id": "b1", "group_id": None, "type": "lecture",
        "held_at": "2026-03-10T11:30:00+00:00", "topic": "党课", "minutes": None,
        "status": "logged", "revision": 1, "quorum_met": True, "cancelled": False,
        "attendance": [{"member_id": m, "status": "present", "remote": False, "expected": True,
                        "visiting": False} for m in attendance],
        "non_members": [{"member_id": m, "status": "present", "remote": False}
                        for m in non_members],
        "warnings": [{"field": "attendance.1.member_id", "message": "not yet a member"}
                     for _ in non_members]})


def activity_logged(ref, member_id="m1"):
    return Envelope.new("meetings", "activity_logged", {
        "activity_id": ref, "member_id": member_id, "branch_id": "b1", "kind": "volunteer",
        "held_at": "2026-04-01T02:00:00+00:00", "note": "清理河道", "household": None,
        "opinions": None})


@pytest.mark.parametrize("order", ["meeting first", "activity first"])
def test_a_meeting_and_an_activity_with_the_same_id_both_stay(admin, order):
    admin.register_member({"member_id": "m1", "name": "张伟", "branch_id": "b1"})
    events = [meeting_logged("x1", ["m1"]), activity_logged("x1")]
    for envelope in events if order == "meeting first" else events[::-1]:
        admin.on_meetings_events([envelope])
    items = admin.get_member("m1")["participation"]["items"]
    assert sorted((i["kind"], i["ref"]) for i in items) == [("activity", "x1"), ("meeting", "x1")]
    cancelled = meeting_logged("x1", ["m1"])
    cancelled.data.update(revision=2, cancelled=True)
    admin.on_meetings_events([Envelope.new("meetings", "meeting_cancelled", cancelled.data)])
    items = admin.get_member("m1")["participation"]["items"]
    assert [(i["kind"], i["ref"]) for i in items] == [("activity", "x1")]


def test_non_member_attendees_get_no_line(admin):
    admin.register_member({"member_id": "m1", "name": "张伟", "branch_id": "b1"})
    admin.register_member({"member_id": "late", "name": "积极分子", "branch_id": "b1",
                           "joined_on": "2026-08-01"})
    admin.on_meetings_events([meeting_logged("mt1", ["m1"], non_members=["late"])])
    assert [i["ref"] for i in admin.get_member("m1")["participation"]["items"]] == ["mt1"]
    assert admin.get_member("late")["participation"]["items"] == []


def test_the_migration_keeps_each_lines_kind_and_closes_archived_history(tmp_path):
    import sqlalchemy as sa

    from orglife.common.migrate import upgrade
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade("members", url, revision="0003")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO participation (member_id, ref, kind, type, branch_id, held_at, year, "
            "status, remote, visiting) VALUES ('m1', 'a1', 'activity', 'volunteer', 'b1', "
            "'2026-04-01 02:00:00', 2026, 'done', 0, 0), ('m1', 'mt1', 'meeting', 'lecture', "
            "'b1', '2026-03-10 11:30:00', 2026, 'present', 0, 0)"))
        conn.execute(text("INSERT INTO organizations (org_id, name, kind, path, version) "
                          "VALUES ('b1', 'b', 'branch', '/b1/', 1)"))
        conn.execute(text(
            "INSERT INTO members (member_id, name, branch_id, status, mobile, committee_member, "
            "no_vote, version) VALUES ('gone', 'x', 'b1', 'deceased', 0, 0, 0, 2), "
            "('here', 'y', 'b1', 'formal', 0, 0, 0, 1)"))
        conn.execute(text("INSERT INTO memberships (member_id, branch_id, since) VALUES "
                          "('gone', 'b1', '2001-01-01'), ('here', 'b1', '2001-01-01')"))
    upgrade("members", url)
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("participation")["constrained_columns"] == [
        "member_id", "kind", "ref"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT kind, ref FROM participation ORDER BY ref")).all() == [
            ("activity", "a1"), ("meeting", "mt1")]
        history = dict(conn.execute(text("SELECT member_id, until FROM memberships")).all())
    assert history["here"] is None and history["gone"] is not None
    engine.dispose()


# -- concurrent writers on SQLite ----------------------------------------------------------------
HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE members SET version = version + 1, email = 'other@example.com' "
           "WHERE member_id = 'm1'")
print("locked", flush=True)
time.sleep(0.5)
db.execute("COMMIT")
"""


def another_instance_writing(members_store):
    """Another process (a second instance, say) holding the write lock while it bumps m1 to
    the next version; it commits half a second after it says "locked"."""
    path = members_store.engine.url.database
    process = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


@pytest.mark.parametrize("change", ["update_member", "import_members"])
def test_a_sqlite_writer_waits_for_another_and_writes_the_next_version(admin, members_store,
                                                                        change):
    admin.register_member({"member_id": "m1", "name": "张伟", "branch_id": "b1"})
    process = another_instance_writing(members_store)
    try:
        if change == "update_member":
            result = admin.update_member({"member_id": "m1", "committee_member": True})
            assert result["version"] == 3
        else:
            result = admin.import_members([{"member_id": "m1", "name": "张伟", "branch": "b1",
                                            "committee_member": "是"}])
            assert result["updated"] == ["m1"] and result["errors"] == []
    finally:
        assert process.wait(timeout=10) == 0
    member = admin.get_member("m1")
    assert (member["version"], member["committee_member"], member["email"]) == (
        3, True, "other@example.com")
    [event] = [e for e in members_store.outbox_events() if e["event_type"] == "member_updated"]
    assert event["data"]["version"] == 3 and event["data"]["email"] == "other@example.com"


def test_a_row_matching_a_stored_member_and_a_new_one_of_the_same_sheet_is_ambiguous(admin):
    """Found by the hostile-input run (intermittent there: it needs a stored member the
    earlier examples left behind): a row without member_id whose name and phone match both
    a stored member and a new member an earlier row of the same sheet creates (under its
    own member_id) is an error naming the row, not an AttributeError that fails the call."""
    admin.register_member({"member_id": "wf-1", "name": "王芳", "branch_id": "b1",
                           "phone": PHONE})
    result = admin.import_members([
        {"member_id": "wf-2", "name": "王芳", "branch": "b1", "phone": PHONE},
        {"name": "王芳", "branch": "b1", "phone": PHONE},
        {"name": "李娜", "branch": "b1"}])
    assert result["created"] == ["wf-2", result["created"][1]] and result["updated"] == []
    [error] = result["errors"]
    assert (error["row"], error["field"]) == (2, "member_id")
    assert "2 members match" in error["message"]
    assert "wf-1" in error["message"] and "wf-2 (row 1)" in error["message"]
    assert admin.list_members({"q": "王芳"})["total"] == 2
