"""Benchmark: a synthetic county imported through import_members, until every
member_registered event is confirmed by the broker and received by a consumer.

    ./orglife bench members_import      (or: .venv/bin/python bench/members_import.py)

Prints members_per_s, events_per_s, seconds_total and the members service's peak RSS.
Targets on the 2-core machine: the county in at most 15 s, at least 5,000 events/s, RSS at most
200 MB.
"""
import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore")

from harness import Bench, PeerCounter, print_figures, register_county_organizations  # noqa: E402
from synthetic import make_county  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=35000)
    parser.add_argument("--branches", type=int, default=1600)
    parser.add_argument("--townships", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=1000, help="rows per call, as the CLI sends")
    args = parser.parse_args()

    county = make_county(seed=7, townships=args.townships, branches=args.branches,
                         members=args.members)
    bench = Bench("members_import")
    try:
        bench.start("members")
        # A peer consumer (plain py-amqp, acking in batches), bound before anything is published.
        peer = PeerCounter(bench.amqp_uri, "members", "member_registered", args.members)
        drainer = eventlet.spawn(peer.run)

        register_county_organizations(bench, county.organizations)
        with bench.rpc() as cluster:
            rows = county.members
            started = time.monotonic()
            created = 0
            for start in range(0, len(rows), args.chunk):
                result = cluster.members.import_members(rows[start:start + args.chunk])
                created += len(result["created"])
                assert not result["errors"], result["errors"][:3]
            imported = time.monotonic()
        drainer.wait()
        done = time.monotonic()
        assert created == args.members
        print_figures("members_import", {
            "members": args.members,
            "organizations": len(county.organizations),
            "members_per_s": args.members / (imported - started),
            "events_per_s": args.members / (peer.last - peer.first),
            "seconds_import": imported - started,
            "seconds_total": done - started,
            "members_peak_rss_mb": bench.peak_rss_mb("members"),
        })
    finally:
        bench.close()


if __name__ == "__main__":
    main()
