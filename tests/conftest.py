"""Fixtures for the whole suite.

eventlet must patch the standard library before anything imports it: nameko 2.14's pytest
plugin no longer does this, and without it the suite hangs (KNOWN-TRAPS).
"""
import warnings

warnings.filterwarnings("ignore", message=".*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402

import uuid  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

import pytest  # noqa: E402
from nameko.testing.services import worker_factory  # noqa: E402

from orglife.common.auth import AuthContext, mint_token  # noqa: E402
from orglife.common.clock import Clock  # noqa: E402
from orglife.common.db import UnitOfWork, make_engine, session_factory  # noqa: E402
from orglife.common.migrate import upgrade  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECRET = "test-secret-not-for-deployment-0123456789"
FIXED_NOW = "2026-11-20T10:00:00+08:00"


def bearer(role="county_admin", org_id=None, sub="tester"):
    return "Bearer " + mint_token(SECRET, sub, role, org_id)


def auth_as(role="county_admin", org_id=None):
    return AuthContext(SECRET, bearer(role, org_id))


class LocalStore:
    """The `store` dependency over a real SQLite file, for worker_factory unit tests."""

    def __init__(self, url, service, backbone):
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        self.service = service
        self.backbone = backbone

    def __call__(self):
        return UnitOfWork(self.sessions, self.service, self.backbone)

    def outbox_backlog(self):
        from sqlalchemy import func, select
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(self.backbone.outbox)
                                .where(self.backbone.outbox.c.sent_at.is_(None))).scalar_one()

    def outbox_events(self):
        import json
        from sqlalchemy import select
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.backbone.outbox.c.body)
                                .order_by(self.backbone.outbox.c.id)).scalars()
            return [json.loads(body) for body in rows]


def migrated_sqlite(tmp_path, service):
    url = f"sqlite:///{tmp_path / (service + '.db')}"
    upgrade(service, url)
    return url


@pytest.fixture
def clock():
    return Clock("Asia/Shanghai", FIXED_NOW)


@pytest.fixture
def members_store(tmp_path):
    from services.members.models import backbone
    return LocalStore(migrated_sqlite(tmp_path, "members"), "members", backbone)


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


def unique_name(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
