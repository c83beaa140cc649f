"""RPC transport junk gets an error reply at once, and the service goes on (issue 7 §3).

Raw requests, as any AMQP client could publish them, to the `nameko-rpc` exchange with routing
key `members.get_member`, a reply queue of the test's own and a correlation id. With nameko's
own `rpc` a body kombu cannot decode raised in the consumer thread: no reply (the caller waited
for its timeout) or a dead container. orglife.common.rpc answers each with a ValidationError
on `_request` naming the problem, acks it (so a restart does not redeliver it), and serves the
next good call.
"""
import json
import time
import uuid

import pytest
from kombu import Connection, Exchange, Producer, Queue

from orglife.common.errors import NotFound
from services.members.service import MembersService
from tests.conftest import bearer, migrated_sqlite, service_config

pytestmark = pytest.mark.integration

RPC_EXCHANGE = Exchange("nameko-rpc", type="topic", durable=True)
ROUTING_KEY = "members.get_member"


@pytest.fixture
def members(container_factory, vhost_uri, tmp_path):
    config = service_config("members", vhost_uri, migrated_sqlite(tmp_path, "members"), tmp_path)

    def start():
        container = container_factory(MembersService, config)
        container.start()
        return container
    return start


class RawCaller:
    """A plain-kombu RPC caller with its own reply queue."""

    def __init__(self, amqp_uri):
        self.connection = Connection(amqp_uri, transport_options={"confirm_publish": True})
        self.reply_key = f"raw-reply-{uuid.uuid4().hex[:8]}"
        self.replies = Queue(self.reply_key, exchange=RPC_EXCHANGE, routing_key=self.reply_key,
                             auto_delete=False, durable=False)(self.connection.channel())
        self.replies.declare()

    def send(self, body, content_type="application/json", headers=None, reply=True):
        correlation_id = uuid.uuid4().hex
        extra = {"reply_to": self.reply_key, "correlation_id": correlation_id} if reply else {}
        Producer(self.connection.channel()).publish(
            body, exchange=RPC_EXCHANGE, routing_key=ROUTING_KEY, content_type=content_type,
            content_encoding="utf-8" if isinstance(body, str) else "binary",
            headers={"nameko.authorization": bearer(), **(headers or {})}, **extra)
        return correlation_id

    def reply(self, correlation_id, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.replies.get(no_ack=True)
            if message is None:
                time.sleep(0.05)
                continue
            assert message.properties["correlation_id"] == correlation_id
            return json.loads(message.body)
        raise AssertionError(f"no reply within {timeout}s")

    def nothing_more(self, wait=1.0):
        time.sleep(wait)
        return self.replies.get(no_ack=True) is None

    def rpc_queue_depth(self):
        _, depth, _ = self.connection.channel().queue_declare("rpc-members", passive=True)
        return depth

    def close(self):
        self.connection.release()


@pytest.fixture
def caller(vhost_uri):
    raw = RawCaller(vhost_uri)
    yield raw
    raw.close()


def refusal(reply):
    """The `_request` messages of a ValidationError reply."""
    assert reply["result"] is None
    error = reply["error"]
    assert error["exc_type"] == "ValidationError", error
    assert error["exc_path"] == "orglife.common.errors.ValidationError"
    return json.loads(error["value"])["_request"]


JUNK = [
    ("not JSON", b"{not json", "application/json", "body is not valid JSON"),
    ("not UTF-8", b"\xff\xfe\x00{", "application/json", "not UTF-8"),
    ("100,000-deep nesting", "[" * 100_000 + "]" * 100_000, "application/json",
     "nested too deeply"),
    ("a 5,000-digit number", '{"args": [' + "9" * 5000 + '], "kwargs": {}}', "application/json",
     "too many digits"),
    ("an unknown __type__", '{"args": [{"__type__": "nope", "__value__": 1}], "kwargs": {}}',
     "application/json", "__type__"),
    ("a bad __value__", '{"args": [{"__type__": "uuid", "__value__": 5}], "kwargs": {}}',
     "application/json", "__type__"),
    ("content kombu refuses", b"\x80\x04K\x01.", "application/x-python-serialize",
     "untrusted"),
    ("plain text", "hello", "text/plain", "untrusted"),
    ("no content type", b"hello", "", "JSON object"),
    ("a JSON list", '["m1"]', "application/json", "JSON object"),
    ("missing kwargs", '{"args": ["m1"]}', "application/json", "missing 'args' or 'kwargs'"),
    ("args not a list", '{"args": "m1", "kwargs": {}}', "application/json",
     "'args' must be a list"),
    ("no arguments", '{"args": [], "kwargs": {}}', "application/json",
     "missing 1 required positional argument: 'member_id'"),
    ("too many arguments", '{"args": ["m1", "m2"], "kwargs": {}}', "application/json",
     "wrong arguments"),
    ("an unknown keyword", '{"args": [], "kwargs": {"id": "m1"}}', "application/json",
     "wrong arguments"),
]


def test_junk_requests_get_a_named_error_reply_and_the_service_goes_on(members, caller,
                                                                       rpc_proxy):
    container = members()
    for what, body, content_type, words in JUNK:
        started = time.monotonic()
        correlation_id = caller.send(body, content_type)
        messages = refusal(caller.reply(correlation_id))
        assert time.monotonic() - started < 5, what
        assert any(words in message for message in messages), (what, messages)
    # a bad context header is refused too, not a dead worker thread
    correlation_id = caller.send('{"args": ["m1"], "kwargs": {}}',
                                 headers={"nameko.call_id_stack": 5})
    assert "call_id_stack" in refusal(caller.reply(correlation_id))[0]
    # junk without reply_to has nobody to answer: it is dropped, not requeued
    caller.send(b"{not json", reply=False)
    # kombu's own JSON types still reach the method (and meet its checks)
    correlation_id = caller.send(
        '{"args": [{"__type__": "datetime", "__value__": "2026-01-01T00:00:00"}], "kwargs": {}}')
    error = caller.reply(correlation_id)["error"]
    assert error["exc_type"] == "ValidationError" and "member_id" in json.loads(error["value"])
    # a token header that is not a string is Unauthorized, a documented error
    correlation_id = caller.send('{"args": ["m1"], "kwargs": {}}',
                                 headers={"nameko.authorization": 123})
    assert caller.reply(correlation_id)["error"]["exc_type"] == "Unauthorized"

    proxy = rpc_proxy(timeout=10)
    with pytest.raises(NotFound):
        proxy.members.get_member("ghost")
    assert proxy.members.register_organization(
        {"org_id": "c1", "name": "青山县", "kind": "county"})["org_id"] == "c1"
    assert proxy.members.get_organization("c1")["name"] == "青山县"

    # nothing was left unacked: after a restart no junk is redelivered (no second reply)
    container.stop()
    assert caller.rpc_queue_depth() == 0
    members()
    assert caller.nothing_more(1.0)
    assert proxy.members.get_organization("c1")["name"] == "青山县"
