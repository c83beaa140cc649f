"""Fixtures for the channel tests: real local endpoints (an SMTP sink, an SMS gateway and a robot
recorder as processes of their own), never mocks. No RabbitMQ is needed."""
import uuid

import pytest

from orglife.devservers import LocalEndpoints
from services.notifications.channels import SlidingWindowLimiter


@pytest.fixture(scope="session")
def local_endpoints(tmp_path_factory):
    """One set of endpoints for the whole run: starting them costs about a second."""
    with LocalEndpoints(tmp_path_factory.mktemp("endpoints")) as endpoints:
        yield endpoints


@pytest.fixture
def endpoints(local_endpoints):
    """The shared endpoints, with no failure planned before or after the test."""
    for recorder in (local_endpoints.sms, local_endpoints.robot):
        recorder.reset_failures()
    yield local_endpoints
    for recorder in (local_endpoints.sms, local_endpoints.robot):
        recorder.reset_failures()


@pytest.fixture
def own_name():
    """A path segment of the test's own: its robot and gateway URLs share nothing with others'."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def limiter():
    """A rate limiter of the test's own, not the process-wide one."""
    return SlidingWindowLimiter()


# -- the service on real SQLite files, fed by the real members, meetings and scoring workers ------
from datetime import timedelta  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from nameko.testing.services import worker_factory  # noqa: E402

from orglife.common.rules import load_rules  # noqa: E402
from orglife.system import SYSTEM  # noqa: E402
from services.notifications.channels import channels_from_config  # noqa: E402
from services.notifications.texts import Texts  # noqa: E402
from tests.conftest import LocalStore, auth_as, migrated_sqlite  # noqa: E402
from tests.meetings.conftest import meetings_store, meetings_worker  # noqa: E402,F401
from tests.members.conftest import members_store, members_worker  # noqa: E402,F401
from tests.scoring.conftest import (  # noqa: E402,F401
    Pipeline, scoring_clock, scoring_store, scoring_worker,
)


def sender(endpoints, owner="notifications-test", **config):
    """The `sender` dependency with real channels to the local endpoints."""
    from services.notifications.domain import member_channels_of
    channels = channels_from_config({**endpoints.config(), **config})
    return SimpleNamespace(channels=channels, member_channels=member_channels_of(channels),
                           default_robot=True, default_robot_url=endpoints.config()[
                               "ORGLIFE_WEBHOOK_URL"], owner=owner, BATCH=200, CONCURRENCY=4, ROUNDS=10,
                           LEASE=timedelta(minutes=5))


@pytest.fixture
def notifications_store(tmp_path, scoring_clock):
    from services.notifications.models import backbone
    return LocalStore(migrated_sqlite(tmp_path, "notifications"), "notifications", backbone,
                      clock=scoring_clock)


@pytest.fixture
def notifications_worker(notifications_store, scoring_clock, endpoints):
    from services.notifications.service import NotificationsService

    def make(role="county_admin", org_id=None, rules=None, owner="notifications-test"):
        return worker_factory(NotificationsService, store=notifications_store,
                              auth=auth_as(role, org_id), clock=scoring_clock,
                              rules=rules or load_rules(), texts=Texts(scoring_clock.tz),
                              sender=sender(endpoints, owner))
    return make


class FullPipeline(Pipeline):
    """Pipeline (tests/scoring/conftest.py) with notifications consuming members', meetings'
    and scoring's events as the declaration subscribes it."""

    def __init__(self, notifications, notifications_store, **kwargs):
        super().__init__(**kwargs)
        self.notifications = notifications
        self.stores["notifications"] = notifications_store
        self.seen["notifications"] = 0
        self.history: dict[str, list] = {"members": [], "meetings": [], "scoring": []}

    def deliver(self):
        members = self.stores["members"].outbox_events()[self.seen["members"]:]
        meetings = self.stores["meetings"].outbox_events()[self.seen["meetings"]:]
        from orglife.common.envelope import Envelope
        fresh = {"members": [Envelope.from_body(b) for b in members],
                 "meetings": [Envelope.from_body(b) for b in meetings]}
        scoring_events = super().deliver()
        fresh["scoring"] = scoring_events
        for source in ("members", "meetings", "scoring"):
            self.history[source] += fresh[source]
            wanted = SYSTEM.subscription("notifications", source).event_types
            batch = [e for e in fresh[source] if e.event_type in wanted]
            if batch:
                getattr(self.notifications, f"on_{source}_events")(batch)
        return scoring_events

    def replay_everything(self):
        """Every event ever delivered, again (a redelivery storm)."""
        for source in ("members", "meetings", "scoring"):
            wanted = SYSTEM.subscription("notifications", source).event_types
            batch = [e for e in self.history[source] if e.event_type in wanted]
            if batch:
                getattr(self.notifications, f"on_{source}_events")(batch)


@pytest.fixture
def full(members_worker, meetings_worker, scoring_worker, notifications_worker, members_store,
         meetings_store, scoring_store, notifications_store):
    return FullPipeline(notifications_worker(), notifications_store,
                        members=members_worker(), meetings=meetings_worker(),
                        scoring=scoring_worker(), members_store=members_store,
                        meetings_store=meetings_store, scoring_store=scoring_store)
