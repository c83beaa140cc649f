"""members' update_organization (issue 9): an organization's name, category, secretary and
work-chat group robot, on a real SQLite database through nameko's worker_factory."""
import pytest

from orglife.common.errors import Forbidden, NotFound, ValidationError
from tests.members.conftest import small_county
from tests.members.test_members_rpc import snapshot

ROBOT = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef"


@pytest.fixture
def admin(members_worker):
    """The small county with members: m1, m2 in b1 (m1 in g1), n1 in b2, e1 in b3 (under gb1),
    x1 in b1 but transferred out of the deployment."""
    worker = members_worker()
    small_county(worker)
    for member_id, branch_id, group_id in (("m1", "b1", "g1"), ("m2", "b1", None),
                                           ("n1", "b2", None), ("e1", "b3", None),
                                           ("x1", "b1", None)):
        worker.register_member({"member_id": member_id, "name": f"党员{member_id}",
                                "branch_id": branch_id, "group_id": group_id})
    worker.transfer_member({"member_id": "x1", "to_branch_id": None})
    return worker


def org_events(store, event_type=None):
    return [e for e in store.outbox_events()
            if e["event_type"] in ((event_type,) if event_type else
                                   ("organization_registered", "organization_updated"))]


# -- the record and its events ----------------------------------------------------------------
def test_the_record_has_a_secretary_and_a_robot_everywhere(admin, members_store):
    registered = org_events(members_store, "organization_registered")
    assert len(registered) == 8
    for event in registered:
        assert event["data"]["secretary_id"] is None and event["data"]["robot_url"] is None
    got = admin.get_organization("b1")
    assert got["secretary_id"] is None and got["robot_url"] is None
    for org in admin.list_organizations({})["items"]:
        assert {"secretary_id", "robot_url", "registered_at", "version", "path"} <= set(org)


def test_update_bumps_the_version_and_emits_the_whole_organization(admin, members_store):
    before = org_events(members_store, "organization_registered")
    b1_registered = next(e for e in before if e["data"]["org_id"] == "b1")["data"]
    updated = admin.update_organization({"org_id": "b1", "name": " 石桥村党支部（新） ",
                                         "category": "community", "secretary_id": "m1",
                                         "robot_url": ROBOT})
    assert updated["name"] == "石桥村党支部（新）" and updated["category"] == "community"
    assert updated["secretary_id"] == "m1" and updated["robot_url"] == ROBOT
    assert updated["version"] == 2
    assert updated["kind"] == "branch" and updated["parent_id"] == "t1"
    assert updated["path"] == ["c1", "t1", "b1"]
    assert updated["registered_at"] == b1_registered["registered_at"]
    events = org_events(members_store, "organization_updated")
    assert len(events) == 1
    event = events[0]
    # The same flat data as organization_registered: the organization as now stored.
    assert set(event["data"]) == set(b1_registered)
    assert event["data"] == updated
    assert event["source"] == "members" and event["schema_version"] == 1
    got = admin.get_organization("b1")
    assert {k: got[k] for k in updated} == updated
    assert admin.list_organizations({"category": "community", "under": "t1"})["total"] == 1


def test_nothing_changed_is_no_new_version_and_no_event(admin, members_store):
    admin.update_organization({"org_id": "t1", "secretary_id": "m1", "robot_url": ROBOT})
    before = snapshot(members_store)
    again = admin.update_organization({"org_id": "t1", "name": "石桥镇 ", "secretary_id": "m1",
                                       "robot_url": ROBOT})
    assert again["version"] == 2
    assert admin.update_organization({"org_id": "t1"})["version"] == 2
    assert snapshot(members_store) == before


def test_null_clears_the_secretary_and_the_robot(admin, members_store):
    admin.update_organization({"org_id": "b1", "secretary_id": "m2", "robot_url": ROBOT})
    cleared = admin.update_organization({"org_id": "b1", "secretary_id": None})
    assert cleared["secretary_id"] is None and cleared["robot_url"] == ROBOT
    assert cleared["version"] == 3
    cleared = admin.update_organization({"org_id": "b1", "robot_url": None})
    assert cleared["robot_url"] is None and cleared["version"] == 4
    events = org_events(members_store, "organization_updated")
    assert [(e["data"]["secretary_id"], e["data"]["robot_url"], e["data"]["version"])
            for e in events] == [("m2", ROBOT, 2), (None, ROBOT, 3), (None, None, 4)]


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, field", [
    ({"kind": "township"}, "kind"),
    ({"kind": "branch"}, "kind"),  # even its own kind: kind is not a field to send
    ({"parent_id": "t2"}, "parent_id"),
    ({"parent_id": None}, "parent_id"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"category": "farm"}, "category"),
    ({"category": None}, "category"),  # a branch needs a category
    ({"robot_url": "ftp://example.cn/robot"}, "robot_url"),
    ({"robot_url": "not a url"}, "robot_url"),
    ({"robot_url": ""}, "robot_url"),
    ({"robot_url": "https://example.cn/" + "x" * 500}, "robot_url"),
    ({"secretary_id": "a/b"}, "secretary_id"),
    ({"secretary_id": "nobody"}, "secretary_id"),  # not a member
    ({"secretary_id": "n1"}, "secretary_id"),  # a member of another branch
    ({"secretary_id": "x1"}, "secretary_id"),  # transferred out: not an active member
    ({"colour": "red"}, "colour"),
])
def test_bad_changes_name_the_field_and_store_nothing(admin, members_store, changes, field):
    before = snapshot(members_store)
    with pytest.raises(ValidationError) as err:
        admin.update_organization({"org_id": "b1", **changes})
    assert field in err.value.errors, err.value.errors
    assert snapshot(members_store) == before


def test_every_bad_field_is_named_at_once(admin):
    with pytest.raises(ValidationError) as err:
        admin.update_organization({"org_id": "b1", "kind": "group", "parent_id": "t2",
                                   "robot_url": "mailto:x@example.cn", "name": ""})
    assert set(err.value.errors) == {"kind", "parent_id", "robot_url", "name"}
    assert "never" in err.value.errors["kind"][0]
    with pytest.raises(ValidationError) as err:
        admin.update_organization({"name": "x"})
    assert "org_id" in err.value.errors
    with pytest.raises(ValidationError) as err:
        admin.update_organization("b1")
    with pytest.raises(NotFound):
        admin.update_organization({"org_id": "nope", "name": "x"})


def test_only_branches_have_a_category(admin):
    with pytest.raises(ValidationError) as err:
        admin.update_organization({"org_id": "t1", "category": "village"})
    assert "only branches" in err.value.errors["category"][0]
    with pytest.raises(ValidationError):
        admin.update_organization({"org_id": "g1", "category": "village"})
    # null on an organization without one changes nothing
    assert admin.update_organization({"org_id": "t1", "category": None})["version"] == 1
    assert admin.update_organization({"org_id": "b3", "category": "school"})["version"] == 2


def test_who_may_be_the_secretary(admin):
    # a branch: one of its own active members
    assert admin.update_organization({"org_id": "b1", "secretary_id": "m2"})["secretary_id"] == "m2"
    with pytest.raises(ValidationError) as err:
        admin.update_organization({"org_id": "b1", "secretary_id": "e1"})
    assert "own members" in err.value.errors["secretary_id"][0]
    # a group: one of its members
    assert admin.update_organization({"org_id": "g1", "secretary_id": "m1"})["secretary_id"] == "m1"
    with pytest.raises(ValidationError) as err:
        admin.update_organization({"org_id": "g1", "secretary_id": "m2"})
    assert "not in group" in err.value.errors["secretary_id"][0]
    # a township, a general branch, the county: any active member of a branch under it
    assert admin.update_organization({"org_id": "t1", "secretary_id": "e1"})["secretary_id"] == "e1"
    assert admin.update_organization({"org_id": "gb1", "secretary_id": "e1"})["version"] == 2
    assert admin.update_organization({"org_id": "c1", "secretary_id": "n1"})["version"] == 2
    for org_id, member_id in (("t1", "n1"), ("gb1", "m1"), ("t2", "m1")):
        with pytest.raises(ValidationError) as err:
            admin.update_organization({"org_id": org_id, "secretary_id": member_id})
        assert "not under" in err.value.errors["secretary_id"][0]
    with pytest.raises(ValidationError) as err:
        admin.update_organization({"org_id": "t1", "secretary_id": "x1"})
    assert "transferred_out" in err.value.errors["secretary_id"][0]
    with pytest.raises(ValidationError) as err:
        admin.update_organization({"org_id": "c1", "secretary_id": "nobody"})
    assert "unknown member" in err.value.errors["secretary_id"][0]


def test_a_secretary_already_set_is_not_checked_again(admin):
    """Re-sending the stored secretary changes nothing, even if the member left since."""
    admin.update_organization({"org_id": "b2", "secretary_id": "n1"})
    admin.transfer_member({"member_id": "n1", "to_branch_id": None})
    assert admin.update_organization({"org_id": "b2", "secretary_id": "n1"})["version"] == 2
    with pytest.raises(ValidationError):
        admin.update_organization({"org_id": "b2", "robot_url": ROBOT, "secretary_id": "m1"})


# -- who may change what ----------------------------------------------------------------------
def test_a_township_admin_changes_its_subtree(admin, members_worker, members_store):
    township = members_worker("township_admin", "t1")
    assert township.update_organization({"org_id": "b3", "name": "宏达集团党支部",
                                         "category": "enterprise"})["version"] == 2
    assert township.update_organization({"org_id": "t1", "secretary_id": "m1",
                                         "robot_url": ROBOT})["version"] == 2
    before = snapshot(members_store)
    with pytest.raises(Forbidden):
        township.update_organization({"org_id": "b2", "robot_url": ROBOT})
    with pytest.raises(Forbidden):
        township.update_organization({"org_id": "c1", "name": "x"})
    # a member outside its scope is not confirmed to exist (the same answer as for nobody)
    with pytest.raises(ValidationError) as err:
        township.update_organization({"org_id": "t1", "secretary_id": "n1"})
    assert "unknown member" in err.value.errors["secretary_id"][0]
    assert snapshot(members_store) == before


def test_a_branch_secretary_sets_its_own_branchs_secretary_and_robot_only(admin, members_worker,
                                                                        members_store):
    secretary = members_worker("branch_secretary", "b1")
    done = secretary.update_organization({"org_id": "b1", "secretary_id": "m2",
                                          "robot_url": ROBOT})
    assert done["secretary_id"] == "m2" and done["version"] == 2
    before = snapshot(members_store)
    for changes in ({"name": "别的名字"}, {"category": "community"},
                    {"name": "石桥村党支部", "robot_url": None}):
        with pytest.raises(Forbidden) as err:
            secretary.update_organization({"org_id": "b1", **changes})
        assert "township or county admin" in str(err.value)
    for org_id in ("b2", "t1", "c1"):
        with pytest.raises(Forbidden):
            secretary.update_organization({"org_id": org_id, "robot_url": ROBOT})
    with pytest.raises(Forbidden):
        members_worker("service").update_organization({"org_id": "b1", "robot_url": ROBOT})
    assert snapshot(members_store) == before


# -- registration takes them too ---------------------------------------------------------------
def test_registration_takes_a_robot_and_a_repeat_stays_idempotent(admin, members_store):
    org = {"org_id": "b9", "name": "新村党支部", "kind": "branch", "parent_id": "t1",
           "category": "village", "robot_url": ROBOT}
    created = admin.register_organization({**org, "secretary_id": None})
    assert created["robot_url"] == ROBOT and created["secretary_id"] is None
    event = org_events(members_store, "organization_registered")[-1]
    assert event["data"]["robot_url"] == ROBOT and event["data"]["secretary_id"] is None
    admin.register_member({"member_id": "k1", "name": "孔明", "branch_id": "b9"})
    admin.update_organization({"org_id": "b9", "secretary_id": "k1"})
    # the original registration again is still the same organization
    again = {key: value for key, value in org.items() if key != "robot_url"}
    assert admin.register_organization(again)["secretary_id"] == "k1"
    with pytest.raises(ValidationError) as err:
        admin.register_organization({"org_id": "b10", "name": "又一村党支部", "kind": "branch",
                                     "parent_id": "t1", "category": "village",
                                     "secretary_id": "m1"})
    assert "update_organization" in err.value.errors["secretary_id"][0]
    with pytest.raises(ValidationError) as err:
        admin.register_organization({"org_id": "b10", "name": "又一村党支部", "kind": "branch",
                                     "parent_id": "t1", "category": "village",
                                     "robot_url": "robot"})
    assert "robot_url" in err.value.errors
