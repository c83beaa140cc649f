"""Least privilege on the broker (SPEC §7): each service's account publishes only to its own
exchange and reads only its own queues; a peer's account may only publish to intake.events.
Secrets are created 0600."""
import os
import stat

import pytest
from amqp.exceptions import AccessRefused
from kombu import Connection

from orglife.common.topology import declare_topology
from orglife.system import SYSTEM
from tests.conftest import unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def accounts_vhost(rabbit):
    vhost = unique_name("acct")
    rabbit.create_vhost(vhost)
    with Connection(rabbit.amqp_uri.rstrip("/") + "/" + vhost) as conn:
        declare_topology(conn.channel(), SYSTEM)  # as `orglife up` does, with the admin account
    yield vhost
    rabbit.delete_vhost(vhost)


def publish(uri, exchange, routing_key="member_registered"):
    with Connection(uri) as conn:
        channel = conn.channel()
        channel.confirm_select()
        import amqp
        channel.basic_publish_confirm(amqp.Message(b"{}", content_type="application/json"),
                                      exchange=exchange, routing_key=routing_key)


def get(uri, queue):
    with Connection(uri) as conn:
        return conn.channel().basic_get(queue, no_ack=False)


def test_a_service_account_publishes_only_to_its_own_exchange(rabbit, accounts_vhost):
    meetings = rabbit.service_account("meetings", accounts_vhost)
    publish(meetings, "meetings.events", "meeting_logged")  # its own: allowed
    with pytest.raises(AccessRefused):
        publish(meetings, "members.events")
    with pytest.raises(AccessRefused):
        publish(meetings, "intake.events", "meeting_reported")
    assert get(meetings, "members.events--meetings") is None  # its own queue: readable
    with pytest.raises(AccessRefused):
        get(meetings, "meetings.events--members")  # members' queue


def test_a_peer_account_may_only_publish_to_intake(rabbit, accounts_vhost):
    peer = rabbit.peer_account("checkin-app", accounts_vhost)
    publish(peer, "intake.events", "meeting_reported")
    for queue in [sub.queue_name for sub in SYSTEM.subscriptions] + ["rpc-members"]:
        with pytest.raises(AccessRefused):
            get(peer, queue)
    with pytest.raises(AccessRefused):
        publish(peer, "members.events")
    with pytest.raises(AccessRefused):
        with Connection(peer) as conn:
            conn.channel().queue_declare("peer-own-queue")


def test_secrets_are_created_private_whatever_the_umask(tmp_path):
    from orglife.common.config import load_settings, write_private
    old = os.umask(0)
    try:
        write_private(tmp_path / "secret-file", "s3cret")
        settings = load_settings({"ORGLIFE_HOME": str(tmp_path / "home")})
    finally:
        os.umask(old)
    for path in (tmp_path / "secret-file", tmp_path / "home" / "secret"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert (tmp_path / "home" / "secret").read_text() == settings.secret
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_service_account_cannot_read_rpc_traffic_or_touch_shared_and_foreign_exchanges(
        rabbit, accounts_vhost):
    members = rabbit.service_account("members", accounts_vhost)
    with Connection(members) as conn:
        channel = conn.channel()
        channel.queue_declare("rpc-members", durable=True, passive=True)
        channel.queue_bind("rpc-members", "nameko-rpc", "members.get_member")  # its own
    for attempt in (
            lambda ch: ch.queue_bind("rpc-members", "nameko-rpc", "#"),  # everyone's calls
            lambda ch: ch.queue_bind("rpc-members", "nameko-rpc", "meetings.log_meeting"),
            lambda ch: ch.exchange_delete("nameko-rpc"),
            lambda ch: ch.exchange_delete("orglife.parked.meetings"),
            lambda ch: ch.queue_bind("meetings.events--members.parked",
                                     "orglife.parked.meetings", "members.events--meetings"),
            lambda ch: ch.basic_publish(__import__("amqp").Message(b"{}"),
                                        exchange="nameko-rpc", routing_key="meetings.cancel")):
        with pytest.raises(AccessRefused):
            with Connection(members) as conn:
                channel = conn.channel()
                attempt(channel)
                channel.basic_qos(0, 1, False)  # a round trip: a refused publish shows here


@pytest.mark.parametrize("service", ["members", "meetings", "scoring"])
def test_every_service_runs_on_its_own_account(rabbit, accounts_vhost, container_factory,
                                               tmp_path, service):
    from nameko.standalone.rpc import ClusterRpcProxy

    from orglife.system import SYSTEM
    from tests.conftest import bearer, migrated_sqlite, service_config
    uri = rabbit.service_account(service, accounts_vhost)
    container = container_factory(SYSTEM.service(service).load_class(), service_config(
        service, uri, migrated_sqlite(tmp_path, service), tmp_path))
    container.start()
    admin = rabbit.amqp_uri.rstrip("/") + "/" + accounts_vhost
    with ClusterRpcProxy({"AMQP_URI": admin}, context_data={"authorization": bearer()},
                         timeout=30) as cluster:
        assert getattr(cluster, service).health()["ok"] is True
    container.stop()
