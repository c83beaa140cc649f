"""members' RPC methods on a real SQLite database, through nameko's worker_factory."""
import pytest

from orglife.common.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationError
from orglife.common.auth import AuthContext
from tests.members.conftest import small_county

MEMBER = {"member_id": "m1", "name": "张伟", "branch_id": "b1", "group_id": "g1",
          "phone": "138 0013 8000", "joined_on": "2010-07-01"}


def snapshot(store):
    """Everything members stored: to show a refused call wrote nothing."""
    from sqlalchemy import text
    with store.engine.connect() as conn:
        return {table: conn.execute(text(f"select * from {table} order by 1")).all()
                for table in ("organizations", "members", "outbox")}


@pytest.fixture
def admin(members_worker):
    worker = members_worker()
    small_county(worker)
    return worker


def test_register_member_stores_it_and_emits_member_registered(admin, members_store):
    member = admin.register_member(MEMBER)
    assert member["phone"] == "13800138000"
    assert member["version"] == 1 and member["status"] == "formal"
    events = [e for e in members_store.outbox_events() if e["event_type"] == "member_registered"]
    assert len(events) == 1
    envelope = events[0]
    assert envelope["source"] == "members" and envelope["schema_version"] == 1
    assert envelope["data"]["member_id"] == "m1" and envelope["data"]["group_id"] == "g1"
    assert set(envelope) == {"event_id", "event_type", "schema_version", "occurred_at",
                             "source", "data"}


def test_organizations_emit_events_and_list_in_tree_order(admin, members_store):
    kinds = [e["data"]["kind"] for e in members_store.outbox_events()]
    assert kinds[:2] == ["county", "township"] and len(kinds) == 8
    page = admin.list_organizations({"kind": "branch"})
    assert page["total"] == 3
    assert {o["org_id"] for o in page["items"]} == {"b1", "b2", "b3"}
    assert admin.get_organization("b3")["path"] == ["c1", "t1", "gb1", "b3"]
    page = admin.list_organizations({"under": "t1", "limit": 2, "offset": 0})
    assert page["total"] == 5 and len(page["items"]) == 2


@pytest.mark.parametrize("org, field", [
    ({"name": "x", "kind": "township"}, "parent_id"),
    ({"name": "x", "kind": "township", "parent_id": "t1"}, "parent_id"),
    ({"name": "x", "kind": "branch", "parent_id": "t1"}, "category"),
    ({"name": "x", "kind": "group", "parent_id": "t1"}, "parent_id"),
    ({"name": "x", "kind": "county", "parent_id": "c1"}, "parent_id"),
    ({"name": "x", "kind": "branch", "parent_id": "nope", "category": "village"}, "parent_id"),
    ({"name": "x", "kind": "city", "parent_id": "c1"}, "kind"),
    ({"name": "", "kind": "township", "parent_id": "c1"}, "name"),
    ({"name": "x", "kind": "branch", "parent_id": "t1", "category": "farm"}, "category"),
    ({"org_id": "a/b", "name": "x", "kind": "township", "parent_id": "c1"}, "org_id"),
    ({"name": "x", "kind": "township", "parent_id": "c1", "colour": "red"}, "colour"),
])
def test_bad_organization_names_the_field_and_stores_nothing(admin, members_store, org, field):
    before = snapshot(members_store)
    with pytest.raises(ValidationError) as err:
        admin.register_organization(org)
    assert field in err.value.errors
    assert snapshot(members_store) == before


def test_same_organization_again_is_idempotent_and_different_is_conflict(admin, members_store):
    before = snapshot(members_store)
    again = admin.register_organization({"org_id": "t1", "name": "石桥镇", "kind": "township",
                                         "parent_id": "c1"})
    assert again["org_id"] == "t1"
    assert snapshot(members_store) == before
    with pytest.raises(Conflict):
        admin.register_organization({"org_id": "t1", "name": "别的镇", "kind": "township",
                                     "parent_id": "c1"})


@pytest.mark.parametrize("changes, field", [
    ({"branch_id": "t1"}, "branch_id"),
    ({"branch_id": "nope"}, "branch_id"),
    ({"group_id": "g-other"}, "group_id"),
    ({"branch_id": "b2", "group_id": "g1"}, "group_id"),
    ({"phone": "12345"}, "phone"),
    ({"email": "not-an-email"}, "email"),
    ({"joined_on": "2030-01-01"}, "joined_on"),
    ({"joined_on": "yesterday"}, "joined_on"),
    ({"status": "removed"}, "status"),
    ({"status": "martian"}, "status"),
    ({"mobile": True}, "mobile_location"),
    ({"name": ""}, "name"),
    ({"member_id": "x" * 65}, "member_id"),
    ({"favourite": 1}, "favourite"),
])
def test_bad_member_names_the_field_and_stores_nothing(admin, members_store, changes, field):
    before = snapshot(members_store)
    with pytest.raises(ValidationError) as err:
        admin.register_member({**MEMBER, **changes})
    assert field in err.value.errors, err.value.errors
    assert snapshot(members_store) == before


def test_register_twice_is_idempotent_different_is_conflict(admin, members_store):
    admin.register_member(MEMBER)
    before = snapshot(members_store)
    assert admin.register_member(MEMBER)["member_id"] == "m1"
    assert snapshot(members_store) == before
    with pytest.raises(Conflict):
        admin.register_member({**MEMBER, "name": "李娜"})


def test_generated_member_id_is_stable(admin):
    first = admin.register_member({"name": "王芳", "branch_id": "b2", "phone": "13900000001"})
    again = admin.register_member({"name": "王芳", "branch_id": "b2", "phone": "13900000001"})
    assert first["member_id"] == again["member_id"] and first["member_id"].startswith("m-")


def test_get_and_list_members_with_filters_and_paging(admin):
    admin.register_member(MEMBER)
    admin.register_member({"member_id": "m2", "name": "李娜", "branch_id": "b2",
                           "status": "probationary", "mobile": True,
                           "mobile_location": "广东省深圳市"})
    admin.register_member({"member_id": "m3", "name": "王强", "branch_id": "b3",
                           "committee_member": True})
    got = admin.get_member("m1")
    assert got["name"] == "张伟" and got["participation"] == {"items": [], "counts": {}}
    assert admin.list_members({})["total"] == 3
    assert [m["member_id"] for m in admin.list_members({"under": "t1"})["items"]] == ["m1", "m3"]
    assert admin.list_members({"status": "probationary"})["items"][0]["member_id"] == "m2"
    assert admin.list_members({"mobile": True})["total"] == 1
    assert admin.list_members({"q": "王"})["total"] == 1
    page = admin.list_members({"limit": 1, "offset": 1})
    assert page["total"] == 3 and [m["member_id"] for m in page["items"]] == ["m2"]
    with pytest.raises(ValidationError) as err:
        admin.list_members({"limit": 0})
    assert "limit" in err.value.errors
    with pytest.raises(ValidationError) as err:
        admin.list_members({"colour": "red"})
    assert "colour" in err.value.errors
    with pytest.raises(NotFound):
        admin.get_member("nobody")


def test_update_member_bumps_version_and_emits_once(admin, members_store):
    admin.register_member(MEMBER)
    updated = admin.update_member({"member_id": "m1", "committee_member": True,
                                   "email": "zw@example.cn"})
    assert updated["version"] == 2 and updated["committee_member"] is True
    unchanged = admin.update_member({"member_id": "m1", "committee_member": True})
    assert unchanged["version"] == 2
    types = [e["event_type"] for e in members_store.outbox_events()]
    assert types.count("member_updated") == 1
    with pytest.raises(ValidationError) as err:
        admin.update_member({"member_id": "m1", "status": "transferred_out"})
    assert "status" in err.value.errors
    with pytest.raises(ValidationError) as err:
        admin.update_member({"member_id": "m1", "branch_id": "b2"})
    assert "branch_id" in err.value.errors
    with pytest.raises(ValidationError) as err:
        admin.update_member({"member_id": "m1", "group_id": "g-none"})
    assert "group_id" in err.value.errors
    with pytest.raises(NotFound):
        admin.update_member({"member_id": "nobody", "name": "x"})
    assert admin.update_member({"member_id": "m1", "status": "deceased"})["status"] == "deceased"


def test_transfer_within_and_out_of_the_deployment(admin, members_store):
    admin.register_member(MEMBER)
    moved = admin.transfer_member({"member_id": "m1", "to_branch_id": "b2"})
    assert moved["branch_id"] == "b2" and moved["group_id"] is None and moved["version"] == 2
    with pytest.raises(ValidationError) as err:
        admin.transfer_member({"member_id": "m1", "to_branch_id": "t1"})
    assert "to_branch_id" in err.value.errors
    with pytest.raises(ValidationError) as err:
        admin.transfer_member({"member_id": "m1"})
    assert "to_branch_id" in err.value.errors
    gone = admin.transfer_member({"member_id": "m1", "to_branch_id": None})
    assert gone["status"] == "transferred_out" and gone["version"] == 3
    with pytest.raises(Conflict):
        admin.transfer_member({"member_id": "m1", "to_branch_id": "b1"})
    transfers = [e for e in members_store.outbox_events()
                 if e["event_type"] == "member_transferred"]
    assert [(t["data"]["from_branch_id"], t["data"]["to_branch_id"]) for t in transfers] == [
        ("b1", "b2"), ("b2", None)]
    # Flat data (SPEC §4), announced with the schema version the declaration gives it.
    assert [t["data"]["member_id"] for t in transfers] == ["m1", "m1"]
    assert {t["schema_version"] for t in transfers} == {2}
    # At the service clock's "now" (ORGLIFE_NOW here), the day the branch history records,
    # so meetings expands later meetings with the old branch up to that instant, not to today.
    assert {t["occurred_at"] for t in transfers} == {"2026-11-20T02:00:00Z"}


def test_scopes_limit_township_admins_and_branch_secretaries(admin, members_worker, members_store):
    admin.register_member(MEMBER)
    admin.register_member({"member_id": "m2", "name": "李娜", "branch_id": "b2"})
    township = members_worker("township_admin", "t1")
    assert [m["member_id"] for m in township.list_members({})["items"]] == ["m1"]
    assert {o["org_id"] for o in township.list_organizations({})["items"]} == {
        "t1", "b1", "g1", "gb1", "b3"}
    with pytest.raises(Forbidden):
        township.get_member("m2")
    with pytest.raises(Forbidden):
        township.register_member({"name": "赵六", "branch_id": "b2"})
    with pytest.raises(Forbidden):
        township.list_members({"under": "t2"})
    with pytest.raises(Forbidden):
        township.register_organization({"name": "新镇", "kind": "township", "parent_id": "c1"})
    township.register_organization({"org_id": "b9", "name": "新村党支部", "kind": "branch",
                                    "parent_id": "t1", "category": "village"})
    secretary = members_worker("branch_secretary", "b2")
    assert [m["member_id"] for m in secretary.list_members({})["items"]] == ["m2"]
    with pytest.raises(Forbidden):
        secretary.update_member({"member_id": "m1", "name": "x"})
    with pytest.raises(Forbidden):
        secretary.transfer_member({"member_id": "m1", "to_branch_id": "b2"})
    peer = members_worker("service")
    assert peer.get_member("m1")["member_id"] == "m1"
    with pytest.raises(Forbidden):
        peer.register_member({"name": "赵六", "branch_id": "b2"})


def test_calls_without_or_with_a_bad_token_are_unauthorized(members_store, clock):
    from nameko.testing.services import worker_factory
    from services.members.service import MembersService
    for authorization in (None, "Bearer not.a.jwt", "Basic abc"):
        worker = worker_factory(MembersService, store=members_store, clock=clock,
                                auth=AuthContext("test-secret-not-for-deployment-0123456789", authorization))
        with pytest.raises(Unauthorized):
            worker.list_members({})
    forged = AuthContext("another-secret", None)
    from orglife.common.auth import mint_token
    worker = worker_factory(MembersService, store=members_store, clock=clock,
                            auth=AuthContext("test-secret-not-for-deployment-0123456789",
                                             "Bearer " + mint_token("another-secret-of-another-deployment", "x",
                                                                    "county_admin")))
    with pytest.raises(Unauthorized):
        worker.list_members({})
    assert forged is not None


def test_ids_with_sql_wildcards_do_not_widen_a_scope(admin, members_worker):
    admin.register_organization({"org_id": "b_1", "name": "甲村党支部", "kind": "branch",
                                 "parent_id": "t1", "category": "village"})
    admin.register_organization({"org_id": "b11", "name": "乙村党支部", "kind": "branch",
                                 "parent_id": "t1", "category": "village"})
    admin.register_member({"member_id": "w1", "name": "甲", "branch_id": "b_1"})
    admin.register_member({"member_id": "w2", "name": "乙", "branch_id": "b11"})
    secretary = members_worker("branch_secretary", "b_1")
    assert [m["member_id"] for m in secretary.list_members({})["items"]] == ["w1"]
    assert [o["org_id"] for o in secretary.list_organizations({})["items"]] == ["b_1"]


def test_archived_members_are_not_changed(admin, members_store):
    admin.register_member(MEMBER)
    admin.transfer_member({"member_id": "m1", "to_branch_id": None})
    before = snapshot(members_store)
    with pytest.raises(Conflict):
        admin.update_member({"member_id": "m1", "status": "formal"})
    assert snapshot(members_store) == before


@pytest.mark.parametrize("call, payload", [
    ("update_member", {"member_id": "m1", "phone": "123"}),
    ("update_member", {"member_id": "m1", "group_id": "g-none"}),
    ("update_member", {"member_id": "m1", "joined_on": "2099-01-01"}),
    ("transfer_member", {"member_id": "m1", "to_branch_id": "t1"}),
    ("transfer_member", {"member_id": "m1", "to_branch_id": "b2", "to_group_id": "g1"}),
])
def test_bad_changes_name_the_field_and_change_nothing(admin, members_store, call, payload):
    admin.register_member(MEMBER)
    before = snapshot(members_store)
    with pytest.raises(ValidationError) as err:
        getattr(admin, call)(payload)
    assert err.value.errors
    assert snapshot(members_store) == before


def test_a_transfer_keeps_the_branch_history(admin):
    admin.register_member(MEMBER)
    admin.transfer_member({"member_id": "m1", "to_branch_id": "b2"})
    admin.transfer_member({"member_id": "m1", "to_branch_id": None})
    history = admin.get_member("m1")["branch_history"]
    assert history == [
        {"branch_id": "b1", "since": "2010-07-01", "until": "2026-11-20"},
        {"branch_id": "b2", "since": "2026-11-20", "until": "2026-11-20"},
    ]


def test_imported_members_have_a_branch_history(admin):
    admin.import_members([{"member_id": "i1", "name": "钱七", "branch": "b3",
                           "joined_on": "2015-05-01"}])
    assert admin.get_member("i1")["branch_history"] == [
        {"branch_id": "b3", "since": "2015-05-01", "until": None}]
