"""Queue arguments by deployment: classic queues by default (a single node), quorum queues with
a delivery limit when ORGLIFE_QUORUM=1 (a cluster), parking queues without a limit."""
from orglife.common.topology import consumer_queue, parking_queue
from orglife.system import SYSTEM

SUB = SYSTEM.subscription("meetings", "intake")


def test_a_single_node_keeps_classic_queues(monkeypatch):
    monkeypatch.delenv("ORGLIFE_QUORUM", raising=False)
    assert consumer_queue(SUB).queue_arguments == {
        "x-dead-letter-exchange": "orglife.parked.meetings",
        "x-dead-letter-routing-key": "intake.events--meetings"}
    assert not parking_queue(SUB).queue_arguments


def test_a_cluster_asks_for_quorum_queues_with_a_delivery_limit(monkeypatch):
    monkeypatch.setenv("ORGLIFE_QUORUM", "1")
    monkeypatch.delenv("ORGLIFE_DELIVERY_LIMIT", raising=False)
    arguments = consumer_queue(SUB).queue_arguments
    assert arguments["x-queue-type"] == "quorum" and arguments["x-delivery-limit"] == 10
    assert arguments["x-dead-letter-exchange"] == "orglife.parked.meetings"
    monkeypatch.setenv("ORGLIFE_DELIVERY_LIMIT", "4")
    assert consumer_queue(SUB).queue_arguments["x-delivery-limit"] == 4
    # parked messages are read without being taken (`parked list`): no limit may drop them
    assert parking_queue(SUB).queue_arguments == {"x-queue-type": "quorum"}


def test_quorum_off_spelled_out(monkeypatch):
    monkeypatch.setenv("ORGLIFE_QUORUM", "0")
    assert "x-queue-type" not in consumer_queue(SUB).queue_arguments
