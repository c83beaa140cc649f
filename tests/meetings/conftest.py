"""meetings' fixtures: a MeetingsService worker on a real SQLite file, and the members'
events that build its copy of a small county."""
import pytest
from nameko.testing.services import worker_factory

from tests.conftest import LocalStore, auth_as, migrated_sqlite


@pytest.fixture
def meetings_store(tmp_path, clock):
    from services.meetings.models import backbone
    return LocalStore(migrated_sqlite(tmp_path, "meetings"), "meetings", backbone, clock)


@pytest.fixture
def meetings_worker(meetings_store, clock):
    """A MeetingsService worker on a real SQLite database."""
    from orglife.common.rules import load_rules
    from services.meetings.roster import RosterCache
    from services.meetings.service import MeetingsService
    rosters = RosterCache()  # one per service instance, shared by its workers

    def make(role="county_admin", org_id=None):
        return worker_factory(MeetingsService, store=meetings_store, auth=auth_as(role, org_id),
                              clock=clock, rules=load_rules(), rosters=rosters)
    return make


def org_events(version=1):
    """organization_registered envelopes of a small county (paths as members sends them)."""
    from orglife.common.envelope import Envelope
    orgs = [("c1", "青山县", "county", None, None), ("t1", "石桥镇", "township", "c1", None),
            ("t2", "白沙乡", "township", "c1", None),
            ("b1", "石桥村党支部", "branch", "t1", "village"),
            ("g1", "第一党小组", "group", "b1", None),
            ("b2", "白沙社区党支部", "branch", "t2", "community"),
            ("b3", "宏达公司党支部", "branch", "t1", "enterprise")]
    paths = {"c1": ["c1"]}
    out = []
    for org_id, name, kind, parent, category in orgs:
        paths[org_id] = paths[parent] + [org_id] if parent else [org_id]
        out.append(Envelope.new("members", "organization_registered", {
            "org_id": org_id, "name": name, "kind": kind, "parent_id": parent,
            "category": category, "version": version, "path": paths[org_id]}))
    return out


def member_event(member_id, branch_id="b1", version=1, event_type=None, **fields):
    from orglife.common.envelope import Envelope
    data = {"member_id": member_id, "name": f"党员{member_id}", "branch_id": branch_id,
            "group_id": None, "status": "formal", "mobile": False, "mobile_location": None,
            "committee_member": False, "no_vote": False, "phone": None, "email": None,
            "joined_on": "2000-01-01", "version": version, **fields}
    kind = event_type or ("member_registered" if version == 1 else "member_updated")
    if kind == "member_transferred":
        return Envelope.new("members", kind, {**data, "from_branch_id": None,
                                              "to_branch_id": branch_id}, schema_version=2)
    return Envelope.new("members", kind, data)


def village_branch_events():
    """b1: nine formal voting members (m1-m3 committee, m1-m4 in g1), one probationary,
    one no_vote; b2: n1 (mobile) and n2; b3: e1, no committee."""
    events = org_events()
    for n in range(1, 10):
        events.append(member_event(f"m{n}", committee_member=n <= 3,
                                   group_id="g1" if n <= 4 else None))
    events.append(member_event("p1", status="probationary"))
    events.append(member_event("x1", no_vote=True))
    events.append(member_event("n1", "b2", mobile=True, mobile_location="广东省深圳市"))
    events.append(member_event("n2", "b2"))
    events.append(member_event("e1", "b3"))
    return events
