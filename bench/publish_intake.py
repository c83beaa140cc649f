"""A peer system that is not nameko: publishes meeting reports on `intake.events`.

    python bench/publish_intake.py AMQP_URI REPORTS.jsonl TIMES.json [--rate N]

Each report becomes an envelope (`source: intake`, routing key `meeting_reported`), persistent,
JSON, with publisher confirms drained per batch. Writes each meeting's publish time (epoch
seconds) to TIMES.json for the latency figures. `--rate` paces publishing (0: as fast as the
broker confirms).
"""
import argparse
import json
import time
import uuid
from datetime import datetime, timezone

import amqp
from kombu import Connection


def connect(uri: str) -> amqp.Connection:
    """A plain py-amqp connection (kombu only parses the URI)."""
    wrapper = Connection(uri)
    wrapper.connect()
    return wrapper.connection


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("amqp_uri")
    parser.add_argument("reports")
    parser.add_argument("times")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()

    connection = connect(args.amqp_uri)
    channel = connection.channel()
    channel.confirm_select()
    confirmed = {"upto": 0}
    channel.events["basic_ack"].add(lambda tag, multiple: confirmed.__setitem__(
        "upto", max(confirmed["upto"], tag)))
    published: dict[str, float] = {}
    tag = 0
    started = time.time()
    with open(args.reports, encoding="utf-8") as lines:
        batch = []
        for line in lines:
            batch.append(json.loads(line))
            if len(batch) >= args.batch:
                tag = publish(channel, connection, batch, published, tag, confirmed)
                batch = []
                if args.rate:
                    lag = started + len(published) / args.rate - time.time()
                    if lag > 0:
                        time.sleep(lag)
        if batch:
            tag = publish(channel, connection, batch, published, tag, confirmed)
    connection.close()
    with open(args.times, "w") as out:
        json.dump(published, out)


def publish(channel, connection, batch, published, tag, confirmed) -> int:
    for report in batch:
        envelope = {"event_id": str(uuid.uuid4()), "event_type": "meeting_reported",
                    "schema_version": 1,
                    "occurred_at": datetime.now(timezone.utc).isoformat(),
                    "source": "intake", "data": report}
        published[report["meeting_id"]] = time.time()
        channel.basic_publish(
            amqp.Message(json.dumps(envelope, ensure_ascii=False),
                         content_type="application/json", content_encoding="utf-8",
                         delivery_mode=2),
            exchange="intake.events", routing_key="meeting_reported")
        tag += 1
    while confirmed["upto"] < tag:
        connection.drain_events(timeout=30)
    return tag


if __name__ == "__main__":
    main()
