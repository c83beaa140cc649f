"""import_members: valid rows stored, invalid ones reported by row and field, re-import silent."""
import pytest

from tests.members.conftest import small_county
from tests.members.test_members_rpc import snapshot

ROWS = [
    {"member_id": "m1", "name": "张伟", "branch": "石桥村党支部", "group": "第一党小组",
     "status": "formal", "phone": "13800138000", "joined_on": "2001-07-01"},
    {"name": "李娜", "branch": "b2", "status": "probationary", "phone": "13900139000"},
    {"name": "王芳", "branch": "不存在的支部"},
    {"name": "刘洋", "branch": "b3", "phone": "1234"},
    {"name": "陈静", "branch": "b3", "mobile": "是", "mobile_location": "广东省深圳市",
     "committee_member": "否", "joined_on": "2099-01-01"},
    {"name": "", "branch": "b1"},
    {"name": "杨光", "branch": "b1", "status": "预备党员x"},
    {"name": "赵磊", "branch": "b3", "mobile": "是", "mobile_location": "浙江省杭州市"},
    {"member_id": "m1", "name": "张伟", "branch": "b1"},
]


@pytest.fixture
def admin(members_worker):
    worker = members_worker()
    small_county(worker)
    return worker


def test_import_stores_valid_rows_and_reports_each_bad_one(admin, members_store):
    result = admin.import_members(ROWS)
    assert len(result["created"]) == 3 and result["updated"] == []
    bad = {(e["row"], e["field"]) for e in result["errors"]}
    assert bad == {(3, "branch"), (4, "phone"), (5, "joined_on"), (6, "name"), (7, "status"),
                   (9, "member_id")}
    assert all(e["message"] for e in result["errors"])
    assert admin.list_members({})["total"] == 3
    assert admin.get_member("m1")["group_id"] == "g1"
    mobile = admin.list_members({"mobile": True})["items"]
    assert [m["name"] for m in mobile] == ["赵磊"]
    events = [e["event_type"] for e in members_store.outbox_events()]
    assert events.count("member_registered") == 3


def test_reimporting_the_same_file_changes_nothing_and_emits_nothing(admin, members_store):
    first = admin.import_members(ROWS)
    before = snapshot(members_store)
    again = admin.import_members(ROWS)
    assert again["created"] == [] and again["updated"] == []
    assert sorted(again["unchanged"]) == sorted(first["created"])
    assert snapshot(members_store) == before


def test_import_updates_changed_rows_with_a_new_version(admin, members_store):
    admin.import_members(ROWS[:2])
    changed = [dict(ROWS[0], committee_member="是"), ROWS[1]]
    result = admin.import_members(changed)
    assert result["updated"] == ["m1"] and len(result["unchanged"]) == 1
    assert admin.get_member("m1")["version"] == 2
    assert [e["event_type"] for e in members_store.outbox_events()].count("member_updated") == 1


def test_import_is_limited_to_the_callers_scope(members_worker, admin):
    township = members_worker("township_admin", "t2")
    result = township.import_members(ROWS[:2])
    assert [e["row"] for e in result["errors"]] == [1]
    assert len(result["created"]) == 1


def test_import_rejects_a_payload_that_is_not_a_list(admin):
    from orglife.common.errors import ValidationError
    with pytest.raises(ValidationError) as err:
        admin.import_members({"name": "x"})
    assert "rows" in err.value.errors


def test_import_does_not_move_a_member_to_another_branch(admin):
    admin.import_members(ROWS[:1])
    moved = dict(ROWS[0], branch="b2", group=None)
    moved.pop("group")
    result = admin.import_members([moved])
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(1, "branch")]
    assert "transfer" in result["errors"][0]["message"]
    assert admin.get_member("m1")["branch_id"] == "b1"
