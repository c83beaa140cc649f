"""Benchmark: the synthetic county year through intake → meetings → members and scoring,
then scoring's reads and a full recalculation.

    .venv/bin/python bench/scoring.py [--fraction 1.0] [--reads 300]

Prints meetings_per_s end to end (until scoring's copy holds every meeting and members' records
do too), the seconds of `recalculate(year)`, p50/p95 of `member_score` and
`branch_compliance` and of a county `ranking` of every branch and `unevenness`, each twice:
in the service (the use case on the service's own database, as the RPC entrypoint runs it) and
over RPC from a client (adds the broker round trip), and scoring's peak RSS.
Targets on the 2-core machine: at least 500 meetings/s, recalculate at most 10 s, p95 at most
10 ms (member score, compliance) and 100 ms (ranking, unevenness) in the service, RSS at most
200 MB.
"""
import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore")

from harness import Bench, concurrent_calls, print_figures, register_county_organizations  # noqa: E402
from meetings_flow import NOW, count_rows, dispatcher_rate  # noqa: E402
from synthetic import make_county  # noqa: E402
from synthetic_meetings import make_meetings  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.95)] * 1000)


def in_service(bench: Bench, calls: dict, reads: int) -> dict:
    """The use cases on scoring's own database, in this process, as the entrypoints run them
    (a read unit of work each): the time the service spends, without the broker."""
    from orglife.common.auth import Principal
    from orglife.common.clock import Clock
    from orglife.common.db import UnitOfWork, make_engine, session_factory
    from orglife.common.rules import load_rules
    from services.scoring import registry
    from services.scoring.models import backbone
    engine = make_engine(bench.db_url("scoring"))
    reader = session_factory(engine.execution_options(sqlite_begin="DEFERRED"))
    clock = Clock("Asia/Shanghai", NOW)
    rules = load_rules()
    admin = Principal("bench", "county_admin")
    today = clock.today()
    out = {}
    for name, (function, args_list) in calls.items():
        samples = []
        for args in args_list[:reads]:
            started = time.perf_counter()
            with UnitOfWork(reader, "scoring", backbone, clock=clock) as uow:
                function(uow, admin, rules, *args, today) if name != "member_score" else \
                    function(uow, admin, rules, *args)
            samples.append(time.perf_counter() - started)
        out[name] = percentiles(samples)
    engine.dispose()
    return out


def over_rpc(bench: Bench, calls: dict, reads: int) -> dict:
    out = {}
    with bench.rpc() as cluster:
        for name, (_, args_list) in calls.items():
            method = getattr(cluster.scoring, name)
            samples = []
            for args in args_list[:reads]:
                started = time.perf_counter()
                method(*args[:-1] if name in ("branch_compliance", "unevenness") else args)
                samples.append(time.perf_counter() - started)
            out[name] = percentiles(samples)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--reads", type=int, default=300, help="calls per read measured")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    from services.scoring import registry

    county = make_county(seed=7)
    reports = make_meetings(county)
    reports = reports[:int(len(reports) * args.fraction)]
    bench = Bench("scoring", now=NOW)
    try:
        bench.start("members", "meetings", "scoring")
        register_county_organizations(bench, county.organizations)
        chunks = [county.members[i:i + 1000] for i in range(0, len(county.members), 1000)]
        concurrent_calls(bench, "members", "import_members", chunks, proxies=1)
        while (bench.ping("meetings") or {}).get("known_members", 0) < len(county.members) or \
                (bench.ping("scoring") or {}).get("known_members", 0) < len(county.members):
            time.sleep(0.5)
        reference = dispatcher_rate(bench.amqp_uri)
        reports_file = bench.work / "reports.jsonl"
        reports_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                        for r in reports), encoding="utf-8")
        started = time.time()
        publisher = subprocess.Popen([sys.executable, str(bench.work.parents[1] / "bench" /
                                                          "publish_intake.py"),
                                      bench.amqp_uri, str(reports_file),
                                      str(bench.work / "published.json")])
        deadline = time.monotonic() + args.timeout
        while True:
            rejected = count_rows(bench.work / "meetings.db", "rejected_intake")
            scored = count_rows(bench.work / "scoring.db", "meeting_copy")
            recorded = count_rows(bench.work / "members.db", "meeting_versions")
            if scored + rejected >= len(reports) and recorded + rejected >= len(reports):
                break
            if time.monotonic() > deadline or publisher.poll() not in (None, 0):
                raise SystemExit(f"not caught up: scored {scored}, recorded {recorded}, "
                                 f"rejected {rejected} of {len(reports)}")
            time.sleep(0.2)
        caught_up = time.time() - started
        publisher.wait()
        flow_rss = bench.peak_rss_mb("scoring")

        rng = random.Random(3)
        members = [m["member_id"] for m in rng.sample(county.members, args.reads)]
        branches = [o["org_id"] for o in county.organizations if o["kind"] == "branch"]
        year = 2026
        calls = {
            "member_score": (registry.member_score, [(m, year) for m in members]),
            "branch_compliance": (registry.branch_compliance,
                                  [(b, year, None) for b in rng.sample(branches, args.reads)]),
            "ranking": (registry.ranking, [("county", year, "branch", 50)] * 40),
            "unevenness": (registry.unevenness, [("county", year, None)] * 40),
        }
        service_side = in_service(bench, calls, args.reads)
        rpc_side = over_rpc(bench, calls, args.reads)
        with bench.rpc() as cluster:
            recalc_started = time.monotonic()
            result = cluster.scoring.recalculate(year)
            recalc_rpc = time.monotonic() - recalc_started
        figures = {
            "meetings": len(reports),
            "attendance_rows": sum(len(r["attendance"]) for r in reports),
            "rejected_intake": rejected,
            "parked": bench.parked(),
            "meetings_per_s": len(reports) / caught_up,
            "seconds_to_catch_up": caught_up,
            "recalculate_s": result["seconds"],
            "recalculate_rpc_s": recalc_rpc,
        }
        for name in calls:
            figures[f"{name}_p50_ms"], figures[f"{name}_p95_ms"] = service_side[name]
        for name in calls:
            figures[f"{name}_rpc_p50_ms"], figures[f"{name}_rpc_p95_ms"] = rpc_side[name]
        figures.update({
            "scoring_peak_rss_mb": bench.peak_rss_mb("scoring"),
            "scoring_rss_after_flow_mb": flow_rss,
            "members_peak_rss_mb": bench.peak_rss_mb("members"),
            "meetings_peak_rss_mb": bench.peak_rss_mb("meetings"),
            "nameko_event_dispatcher_per_s": reference,
        })
        print_figures("scoring (a county year through intake, then scoring's reads)", figures)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
