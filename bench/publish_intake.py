"""A peer system that is not nameko: publishes meeting reports on `intake.events`.

    python bench/publish_intake.py AMQP_URI REPORTS.jsonl TIMES.json [--rate N]

Each report becomes an envelope (`source: intake`, routing key `meeting_reported`), persistent,
JSON, with publisher confirms drained per batch. Writes each meeting's publish time (epoch
seconds) to TIMES.json for the latency figures. `--rate` paces publishing (0: as fast as the
broker confirms).

As a careful peer does, it survives a broker that goes away: a batch whose confirms did not
all arrive is published again once it can reconnect, with the same event ids, so meetings'
inbox drops the copies that did arrive.
"""
import argparse
import json
import time
import uuid
from datetime import datetime, timezone

import amqp
from kombu import Connection

EVENT_IDS = uuid.UUID("3f6c0b9e-2a41-4d7b-8c55-0b1e9d7a4c21")


def connect(uri: str) -> dict:
    """A plain py-amqp connection and a confirming channel (kombu only parses the URI)."""
    wrapper = Connection(uri, connect_timeout=5)
    wrapper.connect()
    link = {"connection": wrapper.connection, "published": 0, "confirmed": 0}
    link["channel"] = channel = link["connection"].channel()
    channel.confirm_select()
    channel.events["basic_ack"].add(
        lambda tag, multiple: link.__setitem__("confirmed", max(link["confirmed"], tag)))
    return link


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("amqp_uri")
    parser.add_argument("reports")
    parser.add_argument("times")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()

    published: dict[str, float] = {}
    link = None
    started = time.time()
    with open(args.reports, encoding="utf-8") as lines:
        reports = [json.loads(line) for line in lines]
    for start in range(0, len(reports), args.batch):
        batch = reports[start:start + args.batch]
        while True:
            try:
                if link is None:
                    link = connect(args.amqp_uri)
                publish(link, batch, published)
                break
            except Exception as exc:  # noqa: BLE001 - the broker went away: reconnect, resend
                print(f"publisher: {type(exc).__name__}: {exc}; reconnecting", flush=True)
                if link is not None:
                    link["connection"].collect()  # drop the dead socket without a handshake
                link = None
                time.sleep(1.0)
        if args.rate:
            lag = started + len(published) / args.rate - time.time()
            if lag > 0:
                time.sleep(lag)
    if link is not None:
        link["connection"].close()
    with open(args.times, "w") as out:
        json.dump(published, out)


def publish(link: dict, batch: list, published: dict) -> None:
    """Publish a batch and wait for every confirm (delivery tags count from 1 per channel)."""
    for report in batch:
        envelope = {"event_id": str(uuid.uuid5(EVENT_IDS, report["meeting_id"])),
                    "event_type": "meeting_reported", "schema_version": 1,
                    "occurred_at": datetime.now(timezone.utc).isoformat(),
                    "source": "intake", "data": report}
        published.setdefault(report["meeting_id"], time.time())
        link["channel"].basic_publish(
            amqp.Message(json.dumps(envelope, ensure_ascii=False),
                         content_type="application/json", content_encoding="utf-8",
                         delivery_mode=2),
            exchange="intake.events", routing_key="meeting_reported")
        link["published"] += 1
    deadline = time.monotonic() + 30
    while link["confirmed"] < link["published"]:
        if time.monotonic() > deadline:
            raise TimeoutError("no confirms within 30 s")
        link["connection"].drain_events(timeout=5)


if __name__ == "__main__":
    main()
