"""The dashboard's pages over the real services' workers (no broker): `WorkerReads` answers
each RPC by calling the real members, meetings and scoring workers on real SQLite files, as
the signed-in user (their role and scope), with the answer round-tripped through JSON as RPC
does. Notifications answer empty (their own tests cover them)."""
import pytest
from kombu.utils import json as kombu_json

from tests.conftest import auth_as
from tests.meetings.conftest import meetings_store, meetings_worker  # noqa: F401  (fixtures)
from tests.members.conftest import members_store, members_worker  # noqa: F401  (fixtures)
from tests.scoring.conftest import (  # noqa: F401  (fixtures)
    attendance, pipeline, register_village, scoring_clock, scoring_store, scoring_worker,
)


class Reply:
    def __init__(self, value=None, error=None):
        self.value, self.error = value, error

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


class WorkerProxy:
    def __init__(self, worker, calls: list, name: str):
        self.worker, self.calls, self.name = worker, calls, name

    def __getattr__(self, method):
        target = getattr(self.worker, method)

        class Method:
            @staticmethod
            def call_async(*args, **kwargs):
                self.calls.append(f"{self.name}.{method}")
                try:
                    value = target(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - as the reply would carry it
                    return Reply(error=exc)
                return Reply(kombu_json.loads(kombu_json.dumps(value)))
        return Method


class QuietNotifications:
    def notification_summary(self, org_id=None):
        return {"items": []}

    def list_notifications(self, filters=None):
        return {"items": [], "total": 0}


@pytest.fixture
def reads_as(members_worker, meetings_worker, scoring_worker):
    """reads_as(role, org_id) → a Reads over the real workers, as that user; `.calls` lists
    every RPC a page made."""
    from services.dashboard.reads import Reads

    def make(role="county_admin", org_id=None):
        calls = []
        reads = Reads({"members": WorkerProxy(members_worker(role, org_id), calls, "members"),
                       "meetings": WorkerProxy(meetings_worker(role, org_id), calls,
                                               "meetings"),
                       "scoring": WorkerProxy(scoring_worker(role, org_id), calls, "scoring"),
                       "notifications": WorkerProxy(QuietNotifications(), calls,
                                                    "notifications")}, timeout=5)
        reads.calls = calls
        return reads
    return make


def principal(role="county_admin", org_id=None):
    return auth_as(role, org_id).principal
