"""members' fixtures: a MembersService worker on a real SQLite file, and a small county."""
import pytest
from nameko.testing.services import worker_factory

from tests.conftest import LocalStore, auth_as, migrated_sqlite


@pytest.fixture
def members_store(tmp_path, clock):
    from services.members.models import backbone
    return LocalStore(migrated_sqlite(tmp_path, "members"), "members", backbone, clock)


@pytest.fixture
def members_worker(members_store, clock):
    """A MembersService worker on a real SQLite database, acting as a county admin."""
    from services.members.service import MembersService

    def make(role="county_admin", org_id=None):
        return worker_factory(MembersService, store=members_store, auth=auth_as(role, org_id),
                              clock=clock)
    return make


def small_county(worker):
    """c1 → t1 (b1 village with group g1, gb1 → b3 enterprise), t2 (b2 community)."""
    orgs = [
        {"org_id": "c1", "name": "青山县", "kind": "county"},
        {"org_id": "t1", "name": "石桥镇", "kind": "township", "parent_id": "c1"},
        {"org_id": "t2", "name": "白沙乡", "kind": "township", "parent_id": "c1"},
        {"org_id": "b1", "name": "石桥村党支部", "kind": "branch", "parent_id": "t1",
         "category": "village"},
        {"org_id": "g1", "name": "第一党小组", "kind": "group", "parent_id": "b1"},
        {"org_id": "gb1", "name": "工业园党总支", "kind": "general_branch", "parent_id": "t1"},
        {"org_id": "b3", "name": "宏达公司党支部", "kind": "branch", "parent_id": "gb1",
         "category": "enterprise"},
        {"org_id": "b2", "name": "白沙社区党支部", "kind": "branch", "parent_id": "t2",
         "category": "community"},
    ]
    for org in orgs:
        worker.register_organization(org)
    return orgs
