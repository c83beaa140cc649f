"""Benchmark: the synthetic county year through intake → meetings → members and scoring,
then scoring's reads and a full recalculation.

    .venv/bin/python bench/scoring.py [--fraction 1.0] [--reads 300]

Prints meetings_per_s end to end (until scoring's copy holds every meeting and members' records
do too), the seconds of `recalculate(year)`, p50/p95 of `member_score` and
`branch_compliance` and of a county `ranking` of every branch and `unevenness`, each twice:
in the service (the use case on the service's own database, as the RPC entrypoint runs it) and
over RPC from a client (adds the broker round trip), and scoring's peak RSS. Over the flow it
also prints the CPU seconds of each service, of the RabbitMQ node and of the publisher, their
sum per meeting, and the rate the machine's cores could carry at that cost if nothing ever
waited (`cpu_bound_meetings_per_s`): the ceiling the end-to-end rate is measured against.
Targets on the 2-core machine: at least 500 meetings/s, recalculate at most 10 s, p95 at most
10 ms (member score, compliance) and 100 ms (ranking, unevenness) in the service, RSS at most
200 MB.

"Caught up" means scoring has every meeting in its copy *and* no dirty mark left to drain (the
figures served are current), read in one statement so the two counts are of one moment; a
count that cannot be read (the database busy) is not taken for zero. Every wait has a deadline
(`--timeout`), and the publisher and the services are stopped however the run ends.
"""
import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import atexit  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import harness  # noqa: E402
from harness import Bench, concurrent_calls, print_figures, register_county_organizations  # noqa: E402
from meetings_flow import NOW, count_rows, dispatcher_rate  # noqa: E402
from synthetic import make_county  # noqa: E402
from synthetic_meetings import make_meetings  # noqa: E402


class OwnBrokerBench(Bench):
    """A Bench on a RabbitMQ node of its own (`.orglife-bench/scoring-broker/`): benchmarks
    share `.orglife-bench/`'s node, and the run that started it stops it when it ends, cutting
    any other run off midway (seen: ECONNREFUSED during the import while another benchmark
    finished). Stopped at the end like the shared one (Bench.close)."""

    def __init__(self, name: str, now: str):
        import shutil
        import signal
        import uuid
        from pathlib import Path

        from orglife.broker import PrivateBroker, ensure_rabbitmq_installed
        from orglife.common.auth import mint_token
        self.name, self.now = name, now
        self.home = harness.REPO / ".orglife-bench"
        self.work = self.home / name
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        ensure_rabbitmq_installed()
        self.broker = PrivateBroker(Path(self.home / f"{name}-broker"))
        self.broker_was_running = self.broker.running()
        self.broker.start()
        self.vhost = f"bench-{name}-{uuid.uuid4().hex[:6]}"
        self.broker.create_vhost(self.vhost)
        self.amqp_uri = self.broker.amqp_uri.rstrip("/") + "/" + self.vhost
        self.processes = {}
        self.token = mint_token(harness.SECRET, "bench", "county_admin")
        self._closed = False
        atexit.register(self.close)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, harness._exit_on_signal)


def scoring_backlog(db_path) -> tuple[int, int] | None:
    """(meetings in scoring's copy, dirty marks left), counted in one statement (one
    snapshot: marks are written in the transaction that stores the meeting), or None when the
    database cannot be read right now. Never 0 for "could not tell": an early exit would time
    reads against figures still being drained."""
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("select (select count(*) from meeting_copy), "
                              "(select count(*) from dirty)").fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return None


def wait_until(condition, deadline: float, what: str, publisher=None) -> None:
    """Poll `condition` until it holds; SystemExit (through `finally`) past `deadline` or when
    the publisher failed."""
    while not condition():
        if publisher is not None and publisher.poll() not in (None, 0):
            raise SystemExit(f"the publisher failed (exit {publisher.returncode}) while "
                             f"waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def stop(process) -> None:
    """A child of this run, stopped if still running (politely, then for good)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


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
    parser.add_argument("--profile", action="append", default=[],
                        choices=["members", "meetings", "scoring"],
                        help="run this service under cProfile (its .prof stays in the work "
                             "folder)")
    parser.add_argument("--reads", type=int, default=300, help="calls per read measured")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    from services.scoring import registry

    county = make_county(seed=7)
    reports = make_meetings(county)
    reports = reports[:int(len(reports) * args.fraction)]
    bench = OwnBrokerBench("scoring", now=NOW)
    publisher = None
    deadline = time.monotonic() + args.timeout
    try:
        bench.start("members", "meetings", "scoring", profile=args.profile)
        register_county_organizations(bench, county.organizations)
        chunks = [county.members[i:i + 1000] for i in range(0, len(county.members), 1000)]
        concurrent_calls(bench, "members", "import_members", chunks, proxies=1)
        wait_until(lambda: all((bench.ping(service) or {}).get("known_members", 0)
                               >= len(county.members) for service in ("meetings", "scoring")),
                   deadline, "meetings and scoring to know every member")
        reference = dispatcher_rate(bench.amqp_uri)
        reports_file = bench.work / "reports.jsonl"
        reports_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                        for r in reports), encoding="utf-8")
        # CPU seconds over the flow alone (the county's registration came before it)
        cpu_before = {name: bench.cpu_seconds(name) for name in ("members", "meetings", "scoring")}
        cpu_before["rabbitmq"] = bench.broker_cpu_seconds()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        publisher = subprocess.Popen([sys.executable, str(harness.REPO / "bench" /
                                                          "publish_intake.py"),
                                      bench.amqp_uri, str(reports_file),
                                      str(bench.work / "published.json")])
        state = {}

        def caught_up_now() -> bool:
            rejected = count_rows(bench.work / "meetings.db", "rejected_intake")
            recorded = count_rows(bench.work / "members.db", "meeting_versions")
            backlog = scoring_backlog(bench.work / "scoring.db")
            state.update(rejected=rejected, recorded=recorded, backlog=backlog)
            if backlog is None:
                return False
            scored, dirty = backlog
            return (scored + rejected >= len(reports) and recorded + rejected >= len(reports)
                    and dirty == 0)
        try:
            wait_until(caught_up_now, deadline, "scoring to catch up", publisher)
        except SystemExit as stopped:
            raise SystemExit(f"{stopped}: {state}") from None
        rejected = state["rejected"]
        caught_up = time.time() - started
        publisher.wait(timeout=60)
        flow_rss = bench.peak_rss_mb("scoring")
        flow_cpu = {name: round(bench.cpu_seconds(name) - cpu_before[name], 1)
                    for name in ("members", "meetings", "scoring")}
        flow_cpu["rabbitmq"] = round(bench.broker_cpu_seconds() - cpu_before["rabbitmq"], 1)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the publisher, reaped
        flow_cpu["publisher"] = round(children.ru_utime + children.ru_stime
                                      - children_before.ru_utime - children_before.ru_stime, 1)
        # what the flow cost in CPU per meeting, and so the most this machine's cores could
        # carry at that cost if nothing ever waited (the ceiling the end-to-end rate meets)
        cores = len(os.sched_getaffinity(0))
        cpu_ms = sum(flow_cpu.values()) * 1000 / len(reports)
        ceiling = cores * 1000 / cpu_ms

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
            **{f"{name}_cpu_s_flow": cpu for name, cpu in flow_cpu.items()},
            "cpu_ms_per_meeting": cpu_ms,
            "cpu_bound_meetings_per_s": ceiling,
            "cpu_seconds_available": cores * caught_up,
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
        stop(publisher)
        bench.close()


if __name__ == "__main__":
    main()
