"""Benchmark under kill -9: a county's meetings flow through intake at a steady rate while the
broker is killed and restarted (several times), then each service process is killed; the
result is compared with an undisturbed run of the same reports.

    .venv/bin/python bench/chaos.py [--reports 3000] [--rate 60] [--broker-kills 3]

Each run is a stack of its own, as `orglife up` makes it (a private RabbitMQ node, each
service supervised on SQLite, each with its own broker account), fed by a plain-AMQP peer
that survives broker outages (bench/publish_intake.py). Printed: `lost` (meetings the
undisturbed run stored that this one did not), `differing` (meetings whose stored attendance
or participation record differs), `parked`, `rejected`, `duplicates` (a meeting announced
more than once, or participation lines beyond the attendance) and the seconds to converge
after the last blow (struck near the end of the flow). All zero is the target. tests/integration/test_chaos.py runs a small one.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "bench")]

NOW = "2027-01-05T10:00:00+08:00"  # the whole of 2026 lies in the past
SECRET = "chaos-benchmark-secret-0123456789-abcdef"


class Stack:
    """One home with its private broker and supervised services, driven like `orglife up`."""

    def __init__(self, home: Path):
        from orglife.common.config import load_settings
        self.home = home
        self.env = {"ORGLIFE_HOME": str(home), "ORGLIFE_NOW": NOW, "ORGLIFE_SECRET": SECRET}
        self._saved_environ = dict(os.environ)  # given back by down()
        for key in [k for k in os.environ if k.startswith("ORGLIFE_")]:
            del os.environ[key]
        os.environ.update(self.env)  # start_services hands os.environ to the services
        self.settings = load_settings(self.env)
        self.uri = None

    def up(self) -> None:
        from orglife import stack
        self.uri = stack.broker_uri(self.settings, start=True, say=lambda *_: None)
        (stack.run_dir(self.settings) / "broker.started").write_text(str(os.getpid()))
        stack.migrate(self.settings)
        stack.declare(self.uri, stack.system_of(self.settings))
        stack.wait_ready(self.uri, stack.start_services(self.settings, self.uri))

    def down(self) -> None:
        from orglife import stack
        try:
            stack.down(self.settings, say=lambda *_: None)
        finally:
            os.environ.clear()
            os.environ.update(self._saved_environ)

    def rpc(self, timeout: float = 120):
        from nameko.standalone.rpc import ClusterRpcProxy

        from orglife.common.auth import mint_token
        token = mint_token(SECRET, "chaos", "county_admin")
        return ClusterRpcProxy({"AMQP_URI": self.uri}, timeout=timeout,
                               context_data={"authorization": f"Bearer {token}"})

    # -- blows ---------------------------------------------------------------------------------
    def kill_broker(self) -> None:
        from orglife.broker import PrivateBroker
        broker = PrivateBroker(self.home)
        pgid = broker._pid()
        if pgid:
            os.killpg(pgid, signal.SIGKILL)
        while broker.running():
            time.sleep(0.1)

    def start_broker(self) -> None:
        from orglife.broker import PrivateBroker
        PrivateBroker(self.home).start()

    def kill_service(self, service: str) -> int:
        from orglife.stack import read_state, run_dir
        pid = read_state(run_dir(self.settings) / f"{service}-1.state").get("worker_pid")
        os.kill(pid, signal.SIGKILL)
        return pid

    # -- reading the outcome ---------------------------------------------------------------------
    def db(self, service: str) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.home / 'db' / (service + '.db')}?mode=ro", uri=True,
                               timeout=10)

    def settled(self, expected: int) -> bool:
        """Every report accounted for (stored or rejected), every meeting in the participation
        records, outboxes empty, queues empty (nothing ready, nothing unacknowledged)."""
        from orglife.broker import PrivateBroker
        try:
            with self.db("meetings") as db:
                stored = db.execute("select count(*) from meetings").fetchone()[0]
                rejected = db.execute("select count(*) from rejected_intake").fetchone()[0]
                meetings_backlog = db.execute(
                    "select count(*) from outbox where sent_at is null").fetchone()[0]
            with self.db("members") as db:
                applied = db.execute("select count(*) from meeting_versions").fetchone()[0]
                members_backlog = db.execute(
                    "select count(*) from outbox where sent_at is null").fetchone()[0]
            queues = PrivateBroker(self.home).queues("/")
        except Exception:  # noqa: BLE001 - a file being written, the broker restarting
            return False
        busy = sum(q["messages"] for q in queues if not q["name"].endswith(".parked")
                   and not q["name"].startswith("rpc"))
        return (stored + rejected == expected and applied == stored
                and meetings_backlog == members_backlog == 0 and busy == 0)

    def snapshot(self) -> dict:
        from orglife.broker import PrivateBroker
        out = {}
        with self.db("meetings") as db:
            out["meetings"] = {m: (rev, q) for m, rev, q in db.execute(
                "select meeting_id, revision, quorum_met from meetings")}
            attendance: dict = {}
            for m, member, status, remote in db.execute(
                    "select meeting_id, member_id, status, remote from attendance"):
                attendance.setdefault(m, set()).add((member, status, bool(remote)))
            out["attendance"] = attendance
            announced = Counter()
            for (body,) in db.execute("select body from outbox where routing_key = "
                                      "'meeting_logged'"):
                announced[json.loads(body)["data"]["meeting_id"]] += 1
            out["announced"] = announced
            out["rejected"] = db.execute("select count(*) from rejected_intake").fetchone()[0]
        with self.db("members") as db:
            record: dict = {}
            for m, member, status, remote in db.execute(
                    "select ref, member_id, status, remote from participation "
                    "where kind = 'meeting'"):
                record.setdefault(m, []).append((member, status, bool(remote)))
            out["participation"] = record
        out["parked"] = sum(q["messages"] for q in PrivateBroker(self.home).queues("/")
                            if q["name"].endswith(".parked"))
        return out


def run(work: Path, county, reports: list, rate: float, blows: list, timeout: float,
        say=print) -> tuple[dict, float]:
    """One run: the stack up, the county in, the reports published at `rate` while `blows`
    (seconds after the publishing starts, action) strike; back once settled."""
    from orglife.broker import PrivateBroker
    stack = Stack(work / "home")
    publisher = None
    try:
        stack.up()
        with stack.rpc() as cluster:
            for org in parents_first(county.organizations):
                cluster.members.register_organization(org)
            for start in range(0, len(county.members), 1000):
                cluster.members.import_members(county.members[start:start + 1000])
            deadline = time.monotonic() + 120
            while cluster.meetings.health()["known_members"] < len(county.members):
                if time.monotonic() > deadline:
                    raise SystemExit("meetings never learnt every member")
                time.sleep(0.5)
        lines = work / "reports.jsonl"
        lines.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reports),
                         encoding="utf-8")
        peer = PrivateBroker(stack.home).peer_account("chaos")  # intake.events only
        publisher = subprocess.Popen([sys.executable, str(REPO / "bench" / "publish_intake.py"),
                                      peer, str(lines), str(work / "published.json"),
                                      "--rate", str(rate), "--batch", "20"],
                                     stdout=open(work / "publisher.log", "ab"),
                                     stderr=subprocess.STDOUT)
        started = time.monotonic()
        for at, action, what in blows:
            time.sleep(max(0.0, started + at - time.monotonic()))
            say(f"  t={time.monotonic() - started:5.1f}s {action} {what or ''}")
            if action == "kill-broker":
                stack.kill_broker()
            elif action == "start-broker":
                stack.start_broker()
            elif action == "kill-service":
                stack.kill_service(what)
        last_blow = time.monotonic()
        if publisher.wait(timeout=timeout) != 0:
            raise SystemExit(f"the publisher failed; see {work / 'publisher.log'}")
        deadline = time.monotonic() + timeout
        while not stack.settled(len(reports)):
            if time.monotonic() > deadline:
                raise SystemExit(f"not settled within {timeout:.0f}s; see {work / 'home'}")
            time.sleep(0.5)
        return stack.snapshot(), time.monotonic() - last_blow
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
        stack.down()


def parents_first(organizations: list) -> list:
    depth: dict = {}
    for org in organizations:  # the synthetic county lists parents before their children
        depth[org["org_id"]] = depth.get(org.get("parent_id"), -1) + 1
    return sorted(organizations, key=lambda org: depth[org["org_id"]])


def compare(calm: dict, stormy: dict) -> dict:
    lost = set(calm["meetings"]) - set(stormy["meetings"])
    differing = {m for m in set(calm["meetings"]) & set(stormy["meetings"])
                 if calm["meetings"][m] != stormy["meetings"][m]
                 or calm["attendance"].get(m) != stormy["attendance"].get(m)
                 or sorted(calm["participation"].get(m, [])) !=
                 sorted(stormy["participation"].get(m, []))}
    duplicates = sum(n - 1 for n in stormy["announced"].values() if n > 1) + sum(
        max(0, len(lines) - len(stormy["attendance"].get(m, ())))
        for m, lines in stormy["participation"].items())
    return {"lost": len(lost), "differing": len(differing), "parked": stormy["parked"],
            "rejected": stormy["rejected"], "duplicates": duplicates}


def schedule(broker_kills: int, duration: float) -> list:
    """The blows, spread over a flow of `duration` seconds: each broker kill followed 3 s later
    by its restart in the first two thirds, then one kill -9 of each service process, the last
    near the end of the flow (so the seconds to converge measure a recovery, not a wait)."""
    blows = []
    for n in range(broker_kills):
        at = duration * (0.1 + 0.55 * n / max(broker_kills, 1))
        blows += [(at, "kill-broker", None), (at + 3.0, "start-broker", None)]
    blows += [(duration * 0.8, "kill-service", "members"),
              (duration * 0.95, "kill-service", "meetings")]
    return sorted(blows, key=lambda blow: blow[0])


def main(argv=None) -> int:
    import eventlet
    eventlet.monkey_patch()
    import warnings
    warnings.filterwarnings("ignore")
    from harness import print_figures
    from synthetic import make_county
    from synthetic_meetings import make_meetings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=60.0, help="reports a second")
    parser.add_argument("--broker-kills", type=int, default=3)
    parser.add_argument("--townships", type=int, default=4)
    parser.add_argument("--branches", type=int, default=160)
    parser.add_argument("--members", type=int, default=3500)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    county = make_county(seed=7, townships=args.townships, branches=args.branches,
                         members=args.members)
    reports = sorted(make_meetings(county), key=lambda r: r["held_at"])[:args.reports]
    work = REPO / ".orglife-bench" / "chaos"
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    (work / "calm").mkdir(parents=True)
    (work / "storm").mkdir(parents=True)
    print(f"undisturbed run: {len(reports)} reports at {args.rate:g}/s")
    calm, _ = run(work / "calm", county, reports, args.rate, [], args.timeout)
    blows = schedule(args.broker_kills, len(reports) / args.rate)
    print(f"run under kill -9 ({len(blows)} blows)")
    stormy, converge = run(work / "storm", county, reports, args.rate, blows, args.timeout)
    figures = {"reports": len(reports), "stored": len(stormy["meetings"]),
               **compare(calm, stormy), "broker_kills": args.broker_kills,
               "service_kills": 2, "seconds_to_converge": converge}
    print_figures("chaos (kill -9 of the broker and of each service under a flow)", figures)
    return 0 if all(figures[k] == 0 for k in ("lost", "differing", "parked", "duplicates")) \
        else 1


if __name__ == "__main__":
    sys.exit(main())
