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
