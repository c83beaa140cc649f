"""Benchmark: the province shape on this machine: a three-node RabbitMQ cluster (quorum queues),
PostgreSQL (a database and a role per service), N instances of every service, counties'
meetings flowing through intake; end-to-end meetings/s and freshness p95, one instance per
service against two.

    .venv/bin/python bench/province.py [--counties 10] [--members 300] [--reports 1500]
                                       [--instances 1,2] [--nodes 3] [--timeout 240]

Each run gets a vhost of its own on the cluster and databases of its own, its services started
as `orglife up` starts them (supervised processes, each service its own broker account, with
every node's address as kombu failover URLs). The counties are synthetic (bench/synthetic.py),
scaled down (`--members` per county) so that a run stays within minutes on two shared cores.

Printed per run: meetings_per_s (first report published to the last one in members'
participation records), freshness p50/p95 (a report's publish to its participation record,
sampled every 0.25 s), the busiest queue's leader node, parked and duplicate counts (0 is the
target: instances share the work and nothing is done twice). tests/integration/test_cluster.py
runs the same machinery small, with a node and an instance of each service killed
(`run(..., blows=...)`) and compared with an undisturbed run (`compare`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "bench")]

SECRET = "province-benchmark-secret-0123456789-abc"
SERVICES = ("members", "meetings", "scoring", "notifications")  # the event flow (no dashboard)


def now_after(reports: list, days: int = 2) -> str:
    """A fixed "now" a couple of days after the last report: recent absences raise follow-ups
    (rules: followups_within_days), and every run of the same reports sees the same clock."""
    last = max(dt.datetime.fromisoformat(r["held_at"]) for r in reports)
    return (last + dt.timedelta(days=days)).replace(hour=10, minute=0).isoformat() + "+08:00"


def flow_rules(work: Path) -> Path:
    """The shipped rules with follow-ups that go at once, no quiet hours and no pause between
    retries: the services run on a fixed clock, on which nothing later would fall due."""
    import re
    from orglife.common.config import DEFAULT_RULES
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(\s*absence_followup_delay_minutes:).*$", r"\1 0", text)
    text = re.sub(r"(?m)^(\s*quiet_hours:).*$", r'\1 ""', text)
    text = re.sub(r"(?m)^(\s*backoff_minutes:).*$", r"\1 [0]", text)
    path = work / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def is_consumer_queue(queue: dict) -> bool:
    """`<source>.events--<consumer>` (not its parking queue, not an RPC queue)."""
    return "--" in queue["name"] and not queue["name"].endswith(".parked")


class Province:
    """One run's deployment on a shared cluster and PostgreSQL: a vhost, a database and role
    per service, `instances` supervised processes per service, a home for their pid files."""

    def __init__(self, work: Path, cluster, pg, instances: int, now: str, endpoints: dict,
                 rules: Path):
        from orglife.cluster import service_databases
        from orglife.common.config import load_settings
        self.work = work
        self.home = work / "home"
        self.cluster, self.pg, self.instances = cluster, pg, instances
        self.now = now
        self.vhost = f"province-{uuid.uuid4().hex[:8]}"
        cluster.create_vhost(self.vhost)
        tag = self.vhost.replace("-", "_")
        self.databases = service_databases(pg, tag, SERVICES)
        admin = cluster.nodes[0]
        self.uri = cluster.uri(*admin._admin_auth, self.vhost)
        self.env = {"ORGLIFE_HOME": str(self.home), "ORGLIFE_NOW": now,
                    "ORGLIFE_SECRET": SECRET, "ORGLIFE_RULES": str(rules),
                    "ORGLIFE_AMQP_URI": self.uri,
                    "ORGLIFE_QUORUM": "1" if cluster.size > 1 else "0",
                    "ORGLIFE_DELIVERY_LIMIT": "10", **endpoints}
        for service in SERVICES:
            self.env[f"ORGLIFE_{service.upper()}_DB_URL"] = self.databases[service]["url"]
            self.env[f"ORGLIFE_{service.upper()}_AMQP_URI"] = cluster.service_account(
                service, self.vhost)
        self._saved_environ = dict(os.environ)  # given back by down()
        for key in [k for k in os.environ if k.startswith("ORGLIFE_")]:
            del os.environ[key]
        os.environ.update(self.env)  # start_services hands os.environ to the services
        self.settings = load_settings(self.env)

    def up(self) -> None:
        from kombu import Connection

        from orglife import stack
        from orglife.common.topology import declare_topology
        stack.migrate(self.settings)
        with Connection(self.uri) as conn:
            declare_topology(conn.channel(), stack.system_of(self.settings))
        started = []
        for service in SERVICES:
            started += stack.start_services(self.settings, self.uri,
                                            {service: self.instances}, only=service)
        stack.wait_ready(self.uri, started, timeout=180)

    def down(self) -> None:
        from orglife import stack
        try:
            stack.down(self.settings, say=lambda *_: None)
        finally:
            os.environ.clear()
            os.environ.update(self._saved_environ)

    def drop(self) -> None:
        """Delete the run's vhost, databases and roles (after `down`)."""
        from orglife.cluster import drop_service_databases
        try:
            self.cluster.delete_vhost(self.vhost)
        finally:
            drop_service_databases(self.pg, self.databases)

    def rpc(self, timeout: float = 120):
        from nameko.standalone.rpc import ClusterRpcProxy

        from orglife.common.auth import mint_token
        token = mint_token(SECRET, "province", "county_admin")
        return ClusterRpcProxy({"AMQP_URI": self.uri}, timeout=timeout,
                               context_data={"authorization": f"Bearer {token}"})

    # -- blows ---------------------------------------------------------------------------------
    def busiest_queue(self) -> dict:
        queues = [q for q in self.cluster.queues(self.vhost) if is_consumer_queue(q)]
        return max(queues, key=lambda q: (q["messages"], q["name"] == "intake.events--meetings"))

    def kill_leader(self) -> int:
        """kill -9 the node leading the busiest queue; returns its index."""
        leader = self.busiest_queue()["leader"]
        node = next(n for n in self.cluster.nodes if n.node_name == leader)
        node.kill()
        return node.index

    def kill_instance(self, service: str, instance: int = 1) -> int:
        from orglife.stack import read_state, run_dir
        pid = read_state(run_dir(self.settings) / f"{service}-{instance}.state")["worker_pid"]
        os.kill(pid, signal.SIGKILL)
        return pid

    # -- reading the outcome ---------------------------------------------------------------------
    def query(self, service: str, sql: str, params: dict | None = None) -> list:
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.pg.port, user="postgres",
                                dbname=self.databases[service]["database"], connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params or {})
                return cur.fetchall()
        finally:
            conn.close()

    def count(self, service: str, sql: str) -> int:
        return self.query(service, sql)[0][0]

    def progress(self) -> dict:
        backlog = {s: self.count(s, "select count(*) from outbox where sent_at is null")
                   for s in SERVICES}
        return {
            "stored": self.count("meetings", "select count(*) from meetings"),
            "rejected": self.count("meetings", "select count(*) from rejected_intake"),
            "recorded": self.count("members", "select count(*) from meeting_versions"),
            "scored": self.count("scoring", "select count(*) from meeting_copy"),
            "dirty": self.count("scoring", "select count(*) from dirty"),
            "seen": self.count("notifications", "select count(*) from meeting_seen"),
            "due": self.query("notifications", "select count(*) from notification where "
                              "status = 'sending' or (status = 'pending' and "
                              "urgent in (true, false) and next_attempt_at <= %(now)s)",  # ix_notification_due
                              {"now": self.now})[0][0],
            "outbox": sum(backlog.values()),
        }

    def settled(self, expected: int) -> bool:
        """Every report accounted for (stored or rejected) and in every service's copy, nothing
        to recompute or send, outboxes empty, consumer queues empty (ready and unacked)."""
        try:
            p = self.progress()
            queues = self.cluster.queues(self.vhost)
        except Exception:  # noqa: BLE001 - a node restarting, a database busy
            return False
        busy = sum(q["messages"] for q in queues if is_consumer_queue(q))
        return (p["stored"] + p["rejected"] == expected and p["recorded"] == p["stored"]
                and p["scored"] == p["stored"] and p["seen"] == p["stored"]
                and p["dirty"] == 0 and p["due"] == 0 and p["outbox"] == 0 and busy == 0)

    def recorded_ids(self) -> set:
        return {row[0] for row in self.query("members", "select meeting_id from meeting_versions")}

    def snapshot(self, endpoints=None) -> dict:
        out: dict = {}
        out["meetings"] = {m: (rev, q) for m, rev, q in self.query(
            "meetings", "select meeting_id, revision, quorum_met from meetings")}
        attendance: dict = {}
        for m, member, status, remote in self.query(
                "meetings", "select meeting_id, member_id, status, remote from attendance"):
            attendance.setdefault(m, set()).add((member, status, bool(remote)))
        out["attendance"] = attendance
        announced = Counter()
        for (body,) in self.query("meetings", "select body from outbox where routing_key = "
                                              "'meeting_logged'"):
            announced[json.loads(body)["data"]["meeting_id"]] += 1
        out["announced"] = announced
        out["rejected"] = self.count("meetings", "select count(*) from rejected_intake")
        record: dict = {}
        for m, member, status, remote in self.query(
                "members", "select ref, member_id, status, remote from participation "
                           "where kind = 'meeting'"):
            record.setdefault(m, []).append((member, status, bool(remote)))
        out["participation"] = record
        out["scores"] = {(m, y): (s, g) for m, y, s, g in self.query(
            "scoring", "select member_id, year, score, grade from member_score")}
        out["compliance"] = {(b, y): (round(c, 6), round(s, 6), light) for b, y, c, s, light in
                             self.query("scoring", "select branch_id, year, compliance, score, "
                                                   "light from branch_stat")}
        # which notifications exist (once each by kind, recipient and cause); their status is
        # compared apart: a robot's rate limit (20 a minute, per process) leaves some pending
        # for a while, and how many depends on time, not on correctness
        rows = self.query("notifications", "select kind, recipient_id, cause, channel, status "
                                           "from notification")
        out["notifications"] = Counter(row[:4] for row in rows)
        out["statuses"] = Counter(row[4] for row in rows)
        out["delivered"] = Counter(row[3] for row in rows if row[4] == "delivered")
        out["parked"] = sum(q["messages"] for q in self.cluster.queues(self.vhost)
                            if q["name"].endswith(".parked"))
        if endpoints is not None:
            out["mails"] = Counter((m.to, m.subject, m.body) for m in endpoints.mails())
            out["sms_received"] = len(endpoints.sms.requests())
            out["robot_received"] = len(endpoints.robot.requests())
        return out


def compare(calm: dict, storm: dict) -> dict:
    """What differs between an undisturbed run and a disturbed one (all zero is the target)."""
    lost = set(calm["meetings"]) - set(storm["meetings"])
    differing = {m for m in set(calm["meetings"]) & set(storm["meetings"])
                 if calm["meetings"][m] != storm["meetings"][m]
                 or calm["attendance"].get(m) != storm["attendance"].get(m)
                 or sorted(calm["participation"].get(m, [])) !=
                 sorted(storm["participation"].get(m, []))}
    duplicates = sum(n - 1 for n in storm["announced"].values() if n > 1) + sum(
        max(0, len(lines) - len(storm["attendance"].get(m, ())))
        for m, lines in storm["participation"].items())
    mails = storm.get("mails", Counter())
    return {
        "lost": len(lost), "differing": len(differing), "parked": storm["parked"],
        "rejected": storm["rejected"], "duplicates": duplicates,
        "scores_differing": len(set(calm["scores"].items()) ^ set(storm["scores"].items())),
        "compliance_differing": len(set(calm["compliance"].items())
                                    ^ set(storm["compliance"].items())),
        "notifications_differing": sum(((calm["notifications"] - storm["notifications"])
                                        + (storm["notifications"] - calm["notifications"]))
                                       .values()),
        "mails_differing": sum(((calm.get("mails", Counter()) - mails)
                                + (mails - calm.get("mails", Counter()))).values()),
        "mails_sent_twice": sum(n - 1 for n in mails.values() if n > 1),
        # each channel's deliveries against what its server received: nothing sent twice
        "mails_vs_delivered": sum(mails.values()) - storm["delivered"]["email"],
        "sms_vs_delivered": storm.get("sms_received", 0) - storm["delivered"]["sms"],
        "robot_vs_delivered": storm.get("robot_received", 0) - storm["delivered"]["robot"],
        "sending_or_unknown": sum(storm["statuses"][s] for s in ("sending", "unknown")),
    }


def notification_diff(calm: dict, storm: dict) -> dict:
    """The notifications only one of the runs has (kind, recipient, cause, channel, status)."""
    return {"calm_only": sorted((calm["notifications"] - storm["notifications"]).elements()),
            "storm_only": sorted((storm["notifications"] - calm["notifications"]).elements())}


def parents_first(organizations: list) -> list:
    depth: dict = {}
    for org in organizations:  # the synthetic county lists parents before their children
        depth[org["org_id"]] = depth.get(org.get("parent_id"), -1) + 1
    return sorted(organizations, key=lambda org: depth[org["org_id"]])


def load(province: Province, county, timeout: float = 180) -> None:
    """The county through members' RPC, then wait until every copy knows every member."""
    with province.rpc() as cluster:
        for org in parents_first(county.organizations):
            cluster.members.register_organization(org)
        for start in range(0, len(county.members), 1000):
            cluster.members.import_members(county.members[start:start + 1000])
        deadline = time.monotonic() + timeout
        while not all(getattr(cluster, s).health().get("known_members", len(county.members))
                      >= len(county.members) for s in ("meetings", "scoring", "notifications")):
            if time.monotonic() > deadline:
                raise SystemExit("the services never learnt every member")
            time.sleep(0.5)


def run(work: Path, cluster, pg, county, reports: list, *, instances: int, rate: float = 0,
        blows: list | None = None, timeout: float = 300, now: str | None = None,
        must_settle: bool = True, say=print) -> tuple[dict, dict]:
    """One run: deploy, load the county, publish the reports (at `rate`/s, 0: flat out) while
    `blows` strike ((seconds after publishing starts, action, argument): kill-leader,
    start-node, kill-instance SERVICE), wait until settled (or, unless `must_settle`, until
    `timeout`: the figures then say how far each service got); (snapshot, figures). Everything
    it started is stopped and deleted before it returns."""
    from orglife.devservers import LocalEndpoints
    work.mkdir(parents=True, exist_ok=True)
    now = now or now_after(reports)
    endpoints = LocalEndpoints(work / "endpoints").start()
    publisher = province = None
    restarts: list[threading.Thread] = []
    try:
        province = Province(work, cluster, pg, instances, now, endpoints.config(),
                            flow_rules(work))
        t0 = time.monotonic()
        province.up()
        say(f"  {instances} instance(s) per service up in {time.monotonic() - t0:.0f}s")
        load(province, county)
        lines = work / "reports.jsonl"
        lines.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reports),
                         encoding="utf-8")
        peer = cluster.peer_account("province", province.vhost)  # intake.events only
        times_file = work / "published.json"
        publisher = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "publish_intake.py"), peer, str(lines),
             str(times_file), "--rate", str(rate), "--batch", "50"],
            stdout=open(work / "publisher.log", "ab"), stderr=subprocess.STDOUT)
        started = time.time()
        seen: dict[str, float] = {}
        pending_blows = sorted(blows or [], key=lambda b: b[0])
        deadline = time.monotonic() + timeout
        struck, killed = [], []
        scored_at = None  # when scoring's copy held every meeting
        progress: dict = {}
        settled = False
        while True:
            now_s = time.time() - started
            while pending_blows and pending_blows[0][0] <= now_s:
                at, action, what = pending_blows.pop(0)
                if action == "kill-leader":
                    what = province.kill_leader()
                    killed.append(what)
                elif action == "start-node":
                    what = what or killed.pop()
                    thread = threading.Thread(target=cluster.start_node, args=(what,))
                    thread.start()
                    restarts.append(thread)
                elif action == "kill-instance":
                    province.kill_instance(what)
                struck.append((round(now_s, 1), action, what))
                say(f"  t={now_s:5.1f}s {action} {what or ''}")
            try:
                for meeting_id in province.recorded_ids() - set(seen):
                    seen[meeting_id] = time.time()
                progress = province.progress()
            except Exception:  # noqa: BLE001 - the database busy: next round
                pass
            if scored_at is None and progress.get("scored", 0) >= len(reports):
                scored_at = time.time()
            if publisher.poll() not in (None, 0):
                raise SystemExit(f"the publisher failed; see {work / 'publisher.log'}")
            if (publisher.poll() == 0 and not pending_blows
                    and len(seen) >= len(reports) - progress.get("rejected", 0)
                    and not any(t.is_alive() for t in restarts)
                    and province.settled(len(reports))):
                settled = True
                break
            if time.monotonic() > deadline:
                if must_settle:
                    raise SystemExit(f"not settled within {timeout:.0f}s: {progress}; "
                                     f"see {work}")
                break
            time.sleep(0.25)
        published = json.loads(times_file.read_text())
        fresh = sorted(seen[m] - published[m] for m in seen if m in published)
        last = max(seen.values()) if seen else started
        first = min(published.values())
        figures = {
            "instances_per_service": instances, "reports": len(reports),
            "settled": settled, "seconds": round(time.time() - first, 1),
            "meetings_per_s": round(len(seen) / max(last - first, 1e-6), 1),
            # scoring's copy (every meeting scored), the slowest consumer here
            "scored_per_s": round(progress.get("scored", 0) / max(
                (scored_at or time.time()) - first, 1e-6), 1),
            "progress_at_end": progress,
            "freshness_p50_s": round(fresh[len(fresh) // 2], 2) if fresh else None,
            "freshness_p95_s": round(fresh[int(len(fresh) * 0.95)], 2) if fresh else None,
            "busiest_queue_leader": province.busiest_queue()["leader"],
            "blows": struck,
        }
        return province.snapshot(endpoints), figures
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
        for thread in restarts:
            thread.join(timeout=120)
        if province is not None:
            province.down()
            province.drop()
        endpoints.stop()


# -- several counties as one province ------------------------------------------------------------
ID_KEYS = ("org_id", "parent_id", "branch_id", "group_id", "member_id", "secretary_id",
           "meeting_id")


def prefixed(value, prefix: str):
    """A county's data with every id prefixed (synthetic counties reuse t1, b001, m0001...)."""
    if isinstance(value, list):
        return [prefixed(item, prefix) for item in value]
    if isinstance(value, dict):
        return {k: (f"{prefix}{v}" if k in ID_KEYS and isinstance(v, str) else
                    prefixed(v, prefix)) for k, v in value.items()}
    return value


def make_province(counties: int, members: int, seed: int = 7):
    from synthetic import County, make_county
    from synthetic_meetings import make_meetings
    orgs, people, reports = [], [], []
    branches = max(2, members // 22)
    for k in range(counties):
        county = make_county(seed=seed + k, townships=max(1, branches // 20), branches=branches,
                             members=members, county_id="county")
        prefix = f"k{k + 1:02d}-"
        orgs += prefixed(county.organizations, prefix)
        people += prefixed(county.members, prefix)
        reports += prefixed(make_meetings(county, seed=11 + k), prefix)
    return County(organizations=orgs, members=people), reports


def main(argv=None) -> int:
    import warnings
    warnings.filterwarnings("ignore")
    import eventlet
    eventlet.monkey_patch()
    import shutil
    from harness import print_figures

    from orglife.cluster import RabbitCluster, start_kept
    from orglife.postgres import PrivateCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counties", type=int, default=10)
    parser.add_argument("--members", type=int, default=300, help="members per county")
    parser.add_argument("--reports", type=int, default=1500,
                        help="the latest this many reports of the province's year")
    parser.add_argument("--instances", default="1,2")
    parser.add_argument("--nodes", type=int, default=3,
                        help="RabbitMQ nodes (1: one node with classic queues, to compare)")
    parser.add_argument("--timeout", type=float, default=240,
                        help="seconds per run after publishing starts, at most: the figures "
                             "then say how far each service got")
    args = parser.parse_args(argv)
    county, reports = make_province(args.counties, args.members)
    reports = sorted(reports, key=lambda r: r["held_at"])[-args.reports:]
    work = REPO / ".orglife-bench" / "province"
    shutil.rmtree(work / "runs", ignore_errors=True)
    home = work if args.nodes == 3 else work / f"nodes-{args.nodes}"
    cluster = RabbitCluster(home, args.nodes)
    pg = PrivateCluster(work / "pg")
    results = []
    try:
        print(f"starting a {args.nodes}-node RabbitMQ cluster and PostgreSQL under {work} ...",
              flush=True)
        cluster = start_kept(home, args.nodes, say=lambda line: print(line, flush=True))
        pg.start()
        print(f"{args.counties} counties, {len(county.members):,} members, "
              f"{len(reports):,} meeting reports (the latest of the year)", flush=True)
        for instances in [int(n) for n in args.instances.split(",")]:
            print(f"run: {instances} instance(s) per service", flush=True)
            snapshot, figures = run(work / "runs" / f"x{instances}", cluster, pg, county,
                                    reports, instances=instances, timeout=args.timeout,
                                    must_settle=False, say=lambda line: print(line, flush=True))
            figures.pop("blows")
            figures.update(stored=len(snapshot["meetings"]), parked=snapshot["parked"],
                           duplicates=compare(snapshot, snapshot)["duplicates"],
                           notifications=sum(snapshot["notifications"].values()),
                           mails=sum(snapshot.get("mails", Counter()).values()))
            results.append((snapshot, figures))
            print_figures(f"province flow, {instances} instance(s) per service", figures)
        if len(results) == 2 and all(f["settled"] for _, f in results):
            same = compare(results[0][0], results[1][0])
            print_figures("one instance vs two: what differs (0 everywhere is the target)", same)
    finally:
        cluster.stop()
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
