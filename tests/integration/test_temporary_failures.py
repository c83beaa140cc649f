"""A temporary failure is waited out, never parked (SPEC §7): members on PostgreSQL keeps
consuming meetings' events while its database is down for 10 s, and converges."""
import tempfile
import threading
import time
from pathlib import Path

import eventlet
import pytest
from sqlalchemy import text

from orglife.common.envelope import Envelope
from orglife.common.migrate import upgrade
from services.members.service import MembersService
from tests.conftest import publish_raw, service_config, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def own_cluster():
    """A cluster of this test's own: it is stopped on purpose, others' must not be."""
    from orglife.postgres import PrivateCluster
    folder = Path(tempfile.mkdtemp(prefix="orglife-pgdown-"))
    cluster = PrivateCluster(folder / "data")
    cluster.start()
    cluster.create_database("members")
    yield cluster
    cluster.stop()


def meeting_event(n: int) -> Envelope:
    return Envelope.new("meetings", "meeting_logged", {
        "meeting_id": f"mt{n:04d}", "branch_id": "b1", "branch_path": ["c1", "t1", "b1"],
        "group_id": None, "type": "theme_day", "held_at": "2026-11-10T11:30:00+00:00",
        "topic": "主题党日", "minutes": None, "status": "logged", "revision": 1,
        "quorum_met": True, "quorum": {"met": True, "rule": None}, "cancelled": False,
        "attendance": [{"member_id": f"m{k}", "status": "present" if k % 3 else "absent",
                        "remote": False, "expected": True, "visiting": False}
                       for k in range(1, 6)]})


def test_a_database_outage_under_a_flow_parks_nothing_and_every_record_converges(
        own_cluster, container_factory, vhost_uri, tmp_path):
    url = own_cluster.url("members")
    upgrade("members", url)
    container = container_factory(MembersService, service_config("members", vhost_uri, url,
                                                                 tmp_path))
    container.start()
    events = [meeting_event(n) for n in range(300)]

    def publish():
        for envelope in events:
            publish_raw(vhost_uri, "meetings.events", "meeting_logged", envelope.to_json())
            eventlet.sleep(0.02)  # ~6 s of steady flow
    publisher = eventlet.spawn(publish)
    eventlet.sleep(1.0)
    # pg_ctl blocks: run it in an OS thread so the service's greenthreads keep running
    stopper = threading.Thread(target=own_cluster.stop)
    stopper.start()
    while stopper.is_alive():
        eventlet.sleep(0.1)
    down_at = time.monotonic()
    publisher.wait()
    eventlet.sleep(max(0.0, 10.0 - (time.monotonic() - down_at)))  # 10 s without a database
    starter = threading.Thread(target=own_cluster.start)
    starter.start()
    while starter.is_alive():
        eventlet.sleep(0.1)

    from orglife.common.db import make_engine
    engine = make_engine(url)

    def converged():
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM participation")).scalar() == 1500
    wait_for(converged, timeout=90, message="every participation line after the outage")
    with engine.connect() as conn:
        per_meeting = conn.execute(text(
            "SELECT ref, count(*), sum(CASE WHEN status = 'absent' THEN 1 ELSE 0 END) "
            "FROM participation GROUP BY ref")).all()
    engine.dispose()
    assert len(per_meeting) == 300 and {(n, a) for _, n, a in per_meeting} == {(5, 1)}
    from kombu import Connection
    with Connection(vhost_uri) as conn:
        _, parked, _ = conn.channel().queue_declare("meetings.events--members.parked",
                                                    passive=True)
    assert parked == 0
