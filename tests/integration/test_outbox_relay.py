"""The outbox relay across a broker outage: nothing committed is lost."""
import eventlet
import pytest

from orglife.broker import PrivateBroker
from orglife.common.db import UnitOfWork, make_engine, session_factory
from orglife.common.outbox import OutboxRelay
from services.members.models import backbone
from tests.conftest import PeerQueue, migrated_sqlite, wait_for

pytestmark = pytest.mark.integration


def commit_events(sessions, count, tag):
    ids = []
    for n in range(count):
        with UnitOfWork(sessions, "members", backbone) as uow:
            ids.append(uow.emit("member_registered", {"member_id": f"{tag}{n}"}).event_id)
            uow.commit()
    return ids


def test_events_committed_while_the_broker_is_down_are_published_when_it_is_back(tmp_path):
    broker = PrivateBroker(tmp_path / "home")
    broker.start()
    relay = None
    try:
        uri = broker.amqp_uri
        PeerQueue(uri, "members.events", ["member_registered"], name="outage-peer").close()
        engine = make_engine(migrated_sqlite(tmp_path, "members"))
        sessions = session_factory(engine)
        relay = OutboxRelay(engine, backbone, uri, "members", poll_interval=0.05)
        runner = eventlet.spawn(relay.run)
        before = commit_events(sessions, 10, "before")
        wait_for(lambda: relay.backlog() == 0, message="first events relayed")

        broker.stop()
        during = commit_events(sessions, 25, "during")  # the service goes on committing
        eventlet.sleep(1.0)
        assert relay.backlog() == 25  # kept, not marked sent, not lost

        broker.start()
        wait_for(lambda: relay.backlog() == 0, timeout=60, message="backlog relayed after restart")
        peer = PeerQueue(uri, "members.events", ["member_registered"], name="outage-peer")
        received = [body["event_id"] for body in peer.drain(35, timeout=30)]
        peer.close()
        assert set(received) == set(before + during)
        assert received[:10] == before  # in commit order
        relay.stop()
        runner.wait()
    finally:
        if relay is not None:
            relay.stop()
        broker.stop()


HOLD_LEASE = """
import sys, time
sys.path[:0] = sys.argv[2:]
from orglife.common.db import make_engine
from orglife.common.outbox import relay_lease
lease = relay_lease(make_engine(sys.argv[1]), "members")
assert lease.hold()
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_relay_lease_is_taken_over_as_soon_as_its_holder_is_killed(
        database, tmp_path, request):
    """The lease dies with its holder (an flock, a session advisory lock): after a kill -9 a
    successor publishes at once, not after a minute. (Usually within milliseconds; the 10 s
    bound only tells "dies with the holder" from a lease that expires after a timeout, with
    room for a loaded CI machine.)"""
    import signal
    import subprocess
    import sys
    import time

    from orglife.common.outbox import relay_lease
    from tests.conftest import REPO
    url = (f"sqlite:///{tmp_path / 'members.db'}" if database == "sqlite"
           else request.getfixturevalue("pg_url"))
    make_engine(url).dispose()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, url, str(REPO / "src"),
                               str(REPO)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        successor = relay_lease(make_engine(url), "members")
        assert successor.hold() is False  # one publisher at a time
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        while not successor.hold():
            assert time.monotonic() - killed < 10.0, "the lease outlived its holder"
            time.sleep(0.02)
        successor.release()
    finally:
        holder.kill()
