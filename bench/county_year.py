"""Benchmark: the synthetic county year through the whole flow, intake → meetings → members,
scoring and notifications (e-mail and SMS to local servers), then a paced stream for freshness.

    .venv/bin/python bench/county_year.py                 # the county year (101,276 meetings;
                                                          # at the 300/s target ~6 min + setup)
    .venv/bin/python bench/county_year.py --quick         # a small county, to try things
    .venv/bin/python bench/county_year.py --members 3500  # a tenth of the county, its year
    .venv/bin/python bench/county_year.py --profile scoring,notifications

Phase 1 (throughput): the year's meeting reports are published on `intake.events` by a
separate, non-nameko process as fast as the broker confirms them, and the run waits until every
service has caught up: meetings stored every report (or rejected it), members recorded every
meeting in the participation records, scoring's copy holds every meeting and its `dirty` table
is empty, notifications handled every meeting event (`meeting_seen`) and has nothing due left
pending or sending; and every service's outbox is empty (nothing committed but unpublished) and
every queue it consumes holds no message, ready or unacknowledged (parked ones are counted
apart). The state must hold on two polls in a row; the time is the first of the two. Prints meetings/s end to end, when each service caught up, notifications
delivered per second (as the service recorded them, and as the SMTP sink and SMS gateway
received them), rejected and parked counts, and queue depths and CPU per service over time.

Phase 2 (freshness): new meetings of the same county fed at a steady 50 a second (one publisher
confirm each) for a minute; for each, the time from its publish to the first `scores_changed`
event (a plain kombu consumer on scoring.events) naming every one of its attendees.

Also: peak RSS per service (VmHWM) and nameko's own EventDispatcher rate, as the reference, in
the same run. Targets on the 2-core machine: at least 300 meetings/s end to end (a county year
in about 6 minutes), p95 freshness at most 1 s at 50 meetings/s, at most 200 MB RSS per service.

The bench rules (a copy of src/orglife/rules.yaml under the work folder, ORGLIFE_RULES) differ
from the shipped ones so that the synthetic year does notify: follow-ups for meetings up to
400 days old, no grace before them, no quiet hours. The run prints the differences.

Never hangs (every wait is bounded, and an overall --timeout), and leaves nothing behind:
services, broker (if it started it), local endpoints and publisher are stopped on success,
failure, Ctrl-C or SIGTERM.
"""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402

import argparse  # noqa: E402
import bisect  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

warnings.filterwarnings("ignore")
# py-amqp warns on stderr when a standalone RPC proxy closes with a delivery in flight (the
# harness's pings): noise here.
logging.getLogger("amqp").setLevel(logging.ERROR)

from harness import REPO, Bench, _exit_on_signal, concurrent_calls, register_county_organizations  # noqa: E402,E501
from meetings_flow import NOW, dispatcher_rate  # noqa: E402
from synthetic import make_county  # noqa: E402
from synthetic_meetings import make_meetings  # noqa: E402

SERVICES = ("members", "meetings", "scoring", "notifications")
STREAM_PREFIX = "live-"  # phase 2's meetings: new ids, the same county
TARGET_MEETINGS_PER_S = 300.0
TARGET_FRESHNESS_P95_S = 1.0
TARGET_RSS_MB = 200.0
# The bench rules: what differs from the shipped rules file, and why.
BENCH_RULES = {
    "followups_within_days": (400, "the synthetic year's meetings are up to a year old on the "
                                   "bench's fixed 'now' (2027-01-05): the shipped 14 days would "
                                   "raise no follow-up at all"),
    "absence_followup_delay_minutes": (0, "the bench's clock is fixed (ORGLIFE_NOW): a grace "
                                          "would never end, nothing would be sent"),
    "quiet_hours": ('""', "no quiet hours: the figure must not depend on the time of day"),
}
# Queues shown in the progress lines (all are recorded in timeline.jsonl).
SHOWN_QUEUES = (("intake.events--meetings", "in>mtg"), ("meetings.events--members", "mtg>mem"),
                ("meetings.events--scoring", "mtg>sco"),
                ("meetings.events--notifications", "mtg>ntf"))


class Deadline:
    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


# -- reading the services' SQLite files (read-only, never holding a lock) -------------------------
def query(db_path: Path, sql: str, params=()):
    """One row of a read-only query; None while the table does not exist yet."""
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql, params).fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return None


def stored_attendance(db_path: Path, prefix: str) -> dict[str, list[str]]:
    """meeting_id → the members whose record it changes (scoring marks them): every stored
    line but a visitor's absence (SPEC §3), for the meetings whose id starts with `prefix`."""
    out: dict[str, list[str]] = {}
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            for meeting_id, member_id in db.execute(
                    "select meeting_id, member_id from attendance where meeting_id >= ? and "
                    "meeting_id < ? and (expected or status != 'absent')",
                    (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))):
                out.setdefault(meeting_id, []).append(member_id)
        finally:
            db.close()
    except sqlite3.OperationalError:
        pass
    return out


def count(db_path: Path, sql: str, params=()) -> int:
    row = query(db_path, sql, params)
    return row[0] if row and row[0] is not None else 0


def stored_instant(text: str) -> str:
    """How SQLAlchemy's DateTime stores an instant in SQLite (UTC wall time), to compare."""
    moment = datetime.fromisoformat(text).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


class Flow:
    """What each service has done so far, read from its own database."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.db = {name: bench.work / f"{name}.db" for name in SERVICES}
        self.now = stored_instant(NOW)

    def snapshot(self) -> dict:
        db = self.db
        return {
            "stored": count(db["meetings"], "select count(*) from meetings"),
            "rejected": count(db["meetings"], "select count(*) from rejected_intake"),
            "waiting": count(db["meetings"], "select count(*) from pending_intake"),
            "recorded": count(db["members"], "select count(*) from meeting_versions"),
            "scored": count(db["scoring"], "select count(*) from meeting_copy"),
            "dirty": count(db["scoring"], "select count(*) from dirty"),
            "seen": count(db["notifications"], "select count(*) from meeting_seen"),
            "due": count(db["notifications"], "select count(*) from notification where "
                         "(status = 'pending' and urgent in (1, 0) and next_attempt_at <= ?)"
                         " or status = 'sending'",  # each urgency a range of ix_notification_due
                         (self.now,)),
            "pending": count(db["notifications"],
                             "select count(*) from notification where status = 'pending'"),
            "delivered": count(db["notifications"],
                               "select count(*) from notification where status = 'delivered'"),
            # committed, not yet published (the outbox relay's backlog, read from its table)
            **{f"outbox_{name}": count(db[name], "select count(*) from outbox where sent_at "
                                                 "is null") for name in SERVICES},
        }

    def notifications_by(self) -> dict:
        out = {}
        try:
            db = sqlite3.connect(f"file:{self.db['notifications']}?mode=ro", uri=True, timeout=5)
            for kind, channel, status, n in db.execute(
                    "select kind, channel, status, count(*) from notification "
                    "group by kind, channel, status order by 1, 2, 3"):
                out[f"{kind}/{channel}/{status}"] = n
            db.close()
        except sqlite3.OperationalError:
            pass
        return out


# -- processes: CPU and memory ---------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_mb(pid: int | None, key: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, TypeError):
        pass
    return float("nan")


def broker_pid(bench: Bench) -> int | None:
    """The bench broker's Erlang VM (its CPU is part of the story on two cores): the beam.smp
    whose HOME is this node's Erlang home (other benches' nodes live under .orglife-bench too,
    so a match on the command line would find theirs)."""
    import psutil
    home = str(getattr(bench.broker, "erlang_home", ""))
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "beam.smp" and home and \
                    proc.environ().get("HOME") == home:
                return proc.pid
        except psutil.Error:
            continue
    return None


def queue_depths(bench: Bench) -> dict | None:
    """Messages (ready + unacknowledged) on each queue the services consume, current (the
    management API's queue totals); parked queues, RPC reply queues and the bench's own are
    left out. None when the management API did not answer."""
    try:
        queues = bench.broker.queues(bench.vhost)
    except Exception:  # noqa: BLE001 - slow or restarting: ask again at the next poll
        return None
    return {q["name"]: q["messages"] for q in queues
            if not q["name"].endswith(".parked") and not q["name"].startswith(("rpc.reply-",
                                                                                 "bench-"))}


def owned_by(queue: str, service: str) -> bool:
    """`SOURCE.events--SERVICE` (its event handlers) or `rpc-SERVICE` (its RPC)."""
    return queue.endswith("--" + service) or queue == "rpc-" + service


class Sampler:
    """CPU share per process between samples; queue depths from the management API."""

    def __init__(self, bench: Bench, endpoints, timeline: Path):
        self.bench = bench
        self.pids = {name: proc.pid for name, proc in bench.processes.items()}
        self.pids["broker"] = broker_pid(bench)
        self.pids["smtp"] = endpoints.smtp.pid
        self.pids["sms"] = endpoints.sms.pid
        self.timeline = timeline.open("a", encoding="utf-8")
        self.last = (time.monotonic(), {n: cpu_seconds(p) for n, p in self.pids.items()})
        self.used = {name: 0.0 for name in self.pids}  # CPU seconds since the sampler started

    def _advance(self) -> tuple[float, dict]:
        """Per process, the CPU seconds used since the last call (never negative: a process
        that went away, e.g. a restarted broker, is looked up again and counted afresh)."""
        now = time.monotonic()
        cpu = {}
        delta = {}
        for name, pid in self.pids.items():
            if name == "broker" and not Path(f"/proc/{pid}").exists():
                self.pids[name] = pid = broker_pid(self.bench)
                self.last[1][name] = 0.0
            cpu[name] = cpu_seconds(pid)
            delta[name] = max(0.0, cpu[name] - self.last[1].get(name, 0.0))
            self.used[name] = self.used.get(name, 0.0) + delta[name]
        span = max(now - self.last[0], 1e-6)
        self.last = (now, cpu)
        return span, delta

    def cpu_total(self) -> dict:
        """CPU seconds used per process since the sampler started."""
        self._advance()
        return dict(self.used)

    def queues(self) -> dict:
        try:
            return {q["name"]: q["messages"] for q in self.bench.broker.queues(self.bench.vhost)
                    if not q["name"].startswith("rpc.reply-")}
        except Exception:  # noqa: BLE001 - the management API is slow or restarting: skip
            return {}

    def sample(self, phase: str, elapsed: float, state: dict) -> dict:
        span, delta = self._advance()
        share = {n: round(100 * d / span) for n, d in delta.items()}
        row = {"phase": phase, "t": round(elapsed, 1), **state, "queues": self.queues(),
               "cpu_pct": share,
               "rss_mb": {n: round(rss_mb(p), 1) for n, p in self.pids.items()
                          if n in SERVICES}}
        self.timeline.write(json.dumps(row) + "\n")
        self.timeline.flush()
        return row

    def close(self):
        self.timeline.close()


def progress_line(row: dict, header: bool = False) -> str:
    if header:
        queues = " ".join(f"{label:>7}" for _, label in SHOWN_QUEUES)
        return (f"{'phase':<6} {'t(s)':>6} {queues} {'stored':>7} {'members':>7} "
                f"{'scored':>7} {'dirty':>6} {'ntf_seen':>8} {'due':>6} {'delivd':>7} "
                f"{'outbox':>6}  "
                f"cpu% mem/mtg/sco/ntf/rabbit/smtp/sms")
    queues = " ".join(f"{row['queues'].get(name, 0):>7}" for name, _ in SHOWN_QUEUES)
    cpu = row["cpu_pct"]
    shares = "/".join(str(cpu.get(n, 0)) for n in ("members", "meetings", "scoring",
                                                     "notifications", "broker", "smtp", "sms"))
    return (f"{row['phase']:<6} {row['t']:>6.0f} {queues} {row['stored']:>7} "
            f"{row['recorded']:>7} {row['scored']:>7} {row['dirty']:>6} {row['seen']:>8} "
            f"{row['due']:>6} {row['delivered']:>7} "
            f"{sum(row.get('outbox_' + n, 0) for n in SERVICES):>6}  {shares}")


# -- what the local endpoints received --------------------------------------------------------------
def endpoint_counts(endpoints) -> dict:
    """Counted from the files (LocalEndpoints.mails() parses every message: too slow here)."""
    out = {}
    times = []
    mails = 0
    for sub in ("new", "cur"):
        folder = endpoints.smtp.maildir / sub
        if folder.exists():
            with os.scandir(folder) as entries:
                for entry in entries:
                    mails += 1
                    try:
                        times.append(entry.stat().st_mtime)
                    except OSError:
                        pass
    out["mails"] = mails
    for name, recorder in (("sms", endpoints.sms), ("robot", endpoints.robot)):
        n, first, last = 0, None, None
        if recorder.record_file.exists():
            with recorder.record_file.open(encoding="utf-8") as lines:
                for line in lines:
                    if not line.strip():
                        continue
                    n += 1
                    try:
                        at = datetime.fromisoformat(json.loads(line)["time"]).timestamp()
                    except (ValueError, KeyError):
                        continue
                    first = at if first is None else first
                    last = at
        out[name] = n
        times += [t for t in (first, last) if t is not None]
    out["first"] = min(times) if times else None
    out["last"] = max(times) if times else None
    return out


# -- scores_changed, as a peer sees it --------------------------------------------------------------
class ScoresWatcher:
    """A plain kombu consumer on scoring.events / scores_changed: when each member was named."""

    def __init__(self, amqp_uri: str, queue: str = "bench-county-year-scores-changed"):
        from kombu import Connection
        from orglife.common.topology import event_exchange
        self.connection = Connection(amqp_uri, connect_timeout=10)
        self.connection.connect()
        self.channel = self.connection.connection.channel()
        event_exchange("scoring")(self.channel).declare()
        self.channel.queue_declare(queue, durable=False, auto_delete=True)
        self.channel.queue_bind(queue, exchange="scoring.events", routing_key="scores_changed")
        self.channel.basic_qos(0, 500, False)
        self.channel.basic_consume(queue, callback=self._on_message, no_ack=True)
        self.named: dict[str, list[float]] = {}  # member_id → arrival times (increasing)
        self.events = 0
        self.running = True

    def _on_message(self, message):
        now = time.time()
        self.events += 1
        try:
            data = json.loads(message.body)["data"]
        except (ValueError, KeyError, TypeError):
            return
        for member_id in data.get("member_ids") or ():
            self.named.setdefault(member_id, []).append(now)

    def run(self):
        while self.running:
            try:
                self.connection.connection.drain_events(timeout=0.5)
            except Exception:  # noqa: BLE001 - socket timeout: nothing this half second
                pass

    def first_after(self, member_id: str, moment: float) -> float | None:
        times = self.named.get(member_id) or ()
        at = bisect.bisect_right(times, moment)
        return times[at] if at < len(times) else None

    def close(self):
        self.running = False
        try:
            self.connection.release()
        except Exception:  # noqa: BLE001
            pass


# -- the run ------------------------------------------------------------------------------------------
def bench_rules(work: Path) -> tuple[Path, list[str]]:
    """A copy of the shipped rules with the BENCH_RULES changes; the lines saying how."""
    import yaml
    from orglife.common.config import DEFAULT_RULES
    from orglife.common.rules import load_rules
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    shipped = yaml.safe_load(text)["notifications"]
    said = []
    for key, (value, why) in BENCH_RULES.items():
        text, n = re.subn(rf"^(  {key}:)[ \t]*\S.*$", rf"\g<1> {value}", text, flags=re.M)
        if n != 1:
            raise SystemExit(f"the shipped rules file has no single notifications.{key}")
        said.append(f"  notifications.{key}: {shipped.get(key)!r} -> {value} ({why})")
    path = work / "rules-bench.yaml"
    path.write_text(text, encoding="utf-8")
    rules = load_rules(str(path))
    assert rules.followups_within_days == BENCH_RULES["followups_within_days"][0]
    assert rules.absence_followup_delay_seconds == 0 and rules.quiet_hours is None
    return path, said


def secretaries(county) -> list[dict]:
    """One secretary per branch: a committee member, else a formal member, else anyone."""
    by_branch: dict[str, list] = {}
    for member in county.members:
        by_branch.setdefault(member["branch_id"], []).append(member)
    out = []
    for branch_id, members in by_branch.items():
        chosen = next((m for m in members if m.get("committee_member")), None) or \
            next((m for m in members if m["status"] == "formal"), members[0])
        out.append({"org_id": branch_id, "secretary_id": chosen["member_id"]})
    return out


def wait_for(what: str, check, deadline: Deadline, interval: float = 0.5):
    while True:
        result = check()
        if result:
            return result
        if deadline.passed():
            raise TimeoutError(f"timed out waiting for {what}")
        eventlet.sleep(interval)


def start_publisher(bench: Bench, reports: list, name: str, rate: float = 0.0,
                    batch: int = 200) -> tuple[subprocess.Popen, Path]:
    reports_file = bench.work / f"{name}.jsonl"
    with reports_file.open("w", encoding="utf-8") as out:
        for report in reports:
            out.write(json.dumps(report, ensure_ascii=False) + "\n")
    times_file = bench.work / f"{name}-published.json"
    log = (bench.work / f"{name}-publisher.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "publish_intake.py"), bench.amqp_uri,
         str(reports_file), str(times_file), "--rate", str(rate), "--batch", str(batch)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, times_file


def stop_process(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else float("nan")


def verdict(value, target, at_least: bool) -> str:
    if value is None or value != value:  # NaN
        return "MISS"
    return "PASS" if (value >= target if at_least else value <= target) else "MISS"


class BrokerWatch:
    """The broker must stay up for the whole run (another bench that started the shared node
    stops it when it ends): fail fast rather than wait for a flow that cannot move."""

    def __init__(self, bench: Bench, grace: float = 30.0):
        self.bench = bench
        self.grace = grace
        self.down_since = None
        self.checked = 0.0

    def check(self) -> None:
        if time.monotonic() - self.checked < 5:
            return
        self.checked = time.monotonic()
        if self.bench.broker.answering():
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.monotonic()
        elif time.monotonic() - self.down_since > self.grace:
            raise RuntimeError("the bench broker stopped answering (was it stopped by another "
                               "bench that shares .orglife-bench?)")


def rates(history: list[tuple[float, dict]], window: float = 60.0) -> dict:
    """Per counter, its change per second over the last `window` seconds of samples."""
    if len(history) < 2:
        return {}
    t1, last = history[-1]
    t0, first = next(((t, s) for t, s in history if t >= t1 - window), history[0])
    if t1 - t0 <= 0:
        return {}
    return {key: (last[key] - first[key]) / (t1 - t0) for key in last}


def phase_throughput(bench, flow, sampler, reports, deadline, progress_every, out) -> dict:
    """Phase 1: the year as fast as the flow takes it, until every service caught up."""
    n = len(reports)
    print(f"\nphase 1: publishing {n:,} meeting reports as fast as the broker confirms; "
          f"waiting until every service has caught up (at most {deadline.left():,.0f} s)",
          flush=True)
    broker = BrokerWatch(bench)
    history: list[tuple[float, dict]] = []
    print(progress_line({}, header=True), flush=True)
    started = time.time()
    publisher, times_file = start_publisher(bench, reports, "year")
    out["publisher"] = publisher
    caught = {}
    # The delivery window opens at the poll before the first delivery was seen: a small
    # county can deliver everything between two polls, and a window of one poll has no length.
    first_delivered = last_delivered = None
    previous_poll = time.time()
    parked, parked_checked = 0, 0.0
    next_progress = 0.0
    published_at = None
    all_done_at = None
    last_depths: dict = {}
    state = flow.snapshot()
    last_delivered_count = state["delivered"]  # the loading's own alerts are not this phase's
    while True:
        now = time.time()
        state = flow.snapshot()
        history.append((now - started, state))
        broker.check()
        if time.monotonic() - parked_checked > 5:
            parked, parked_checked = bench.parked(), time.monotonic()
        if state["delivered"] > last_delivered_count:
            first_delivered = first_delivered or previous_poll
            last_delivered, last_delivered_count = now, state["delivered"]
        previous_poll = now
        if published_at is None and publisher.poll() is not None:
            if publisher.returncode != 0:
                raise RuntimeError(f"the publisher failed (exit {publisher.returncode}); see "
                                   f"{bench.work}/year-publisher.log")
            published_at = now
        gone = state["rejected"] + parked
        done = {
            "meetings": state["stored"] + gone >= n and state["waiting"] == 0,
            "members": state["recorded"] + gone >= n,
            "scoring": state["scored"] + gone >= n and state["dirty"] == 0,
            "notifications": state["seen"] + gone >= n and state["due"] == 0,
        }
        done = {name: ok and state[f"outbox_{name}"] == 0 for name, ok in done.items()}
        if published_at is not None and any(done.values()):
            # Counted as done: are its queues empty too (nothing on its way to it)?
            depths = queue_depths(bench)
            last_depths = depths if depths is not None else last_depths
            for name in SERVICES:
                done[name] = done[name] and depths is not None and not any(
                    messages for queue, messages in depths.items() if owned_by(queue, name))
        for name, ok in done.items():
            if ok and published_at is not None:
                caught.setdefault(name, now - started)
            else:
                caught.pop(name, None)  # more work reached it after all: not caught up yet
        all_done = published_at is not None and all(done.values())
        if not all_done:
            all_done_at = None
        elif all_done_at is None:
            all_done_at = now - started
            eventlet.sleep(0.5)
            continue  # once more, to be sure nothing was in flight between the reads
        if now - started >= next_progress or all_done:
            row = sampler.sample("year", now - started, state)
            print(progress_line(row), flush=True)
            next_progress += progress_every
        if all_done:
            break
        if deadline.passed():
            print("phase 1: NOT caught up before the deadline", flush=True)
            break
        eventlet.sleep(0.5)
    finished = time.time()
    caught_up = all_done_at is not None and all(name in caught for name in SERVICES)
    if not caught_up:
        pending = {q: m for q, m in (queue_depths(bench) or last_depths).items() if m}
        gone = state["rejected"] + parked
        outboxes = {name: state[f"outbox_{name}"] for name in SERVICES
                    if state[f"outbox_{name}"]}
        print(f"phase 1: still pending after {time.time() - started:,.0f} s (of {n:,} "
              f"meetings; {gone:,} rejected or parked): meetings stored {state['stored']:,} "
              f"({state['waiting']:,} waiting), members recorded {state['recorded']:,}, "
              f"scoring copied {state['scored']:,} ({state['dirty']:,} dirty marks), "
              f"notifications saw {state['seen']:,} ({state['due']:,} due unsent); "
              f"outboxes unpublished: {json.dumps(outboxes) if outboxes else 'none'}; "
              f"queues holding messages: {json.dumps(pending) if pending else 'none'}",
              flush=True)
    published = json.loads(times_file.read_text()) if times_file.exists() else {}
    return {"n": n, "started": started, "finished": finished, "caught_up": caught_up,
            "caught": caught, "all_done_at": all_done_at, "state": state,
            "parked": bench.parked(),
            "rates": rates(history),
            "publish_s": (max(published.values()) - started) if published else None,
            "first_delivered": first_delivered, "last_delivered": last_delivered,
            "cpu": sampler.cpu_total()}


def phase_freshness(bench, flow, sampler, reports, rate, deadline, progress_every, out) -> dict:
    """Phase 2: new meetings at a steady rate; publish → scores_changed naming its members."""
    n = len(reports)
    print(f"\nphase 2: feeding {n:,} new meetings at {rate:g}/s (one confirm each); "
          f"publish -> scores_changed naming every attendee", flush=True)
    # The flow is quiet: nothing of phase 1 is still on its way to a scores_changed.
    wait_for("scoring's outbox to empty",
             lambda: (bench.ping("scoring") or {}).get("outbox_backlog", 1) == 0,
             Deadline(min(60, max(deadline.left(), 1))))
    watcher = ScoresWatcher(bench.amqp_uri)
    out["watcher"] = watcher
    thread = eventlet.spawn(watcher.run)
    print(progress_line({}, header=True), flush=True)
    started = time.time()
    publisher, times_file = start_publisher(bench, reports, "stream", rate=rate, batch=1)
    out["publisher"] = publisher
    # Publishing at the rate takes n / rate seconds; a publisher still at it long after is
    # stuck (it waits for a broker that went away).
    publishing = Deadline(min(n / rate * 1.5 + 30, max(deadline.left(), 1)))
    broker = BrokerWatch(bench)
    next_progress = progress_every
    grace = None
    rejected_before = count(flow.db["meetings"], "select count(*) from rejected_intake")
    fresh: dict[str, float] = {}
    published: dict[str, float] = {}
    timed_out = False
    while True:
        now = time.time()
        broker.check()
        if grace is None and publishing.passed():
            raise RuntimeError(f"the stream publisher did not finish in time; see "
                               f"{bench.work}/stream-publisher.log")
        if publisher.poll() is not None and grace is None:
            if publisher.returncode != 0:
                raise RuntimeError(f"the stream publisher failed (exit {publisher.returncode})")
            published = json.loads(times_file.read_text())
            grace = Deadline(min(60.0, max(deadline.left(), 1)))
        if published:
            # The members a meeting counts for, as meetings stored it: a listed person who was
            # not yet a member on its date is kept apart and scores nothing (meetings/domain.py).
            members_of = stored_attendance(flow.db["meetings"], STREAM_PREFIX)
            for meeting_id, at in published.items():
                if meeting_id in fresh or not members_of.get(meeting_id):
                    continue
                times = [watcher.first_after(m, at) for m in members_of[meeting_id]]
                if all(t is not None for t in times):
                    fresh[meeting_id] = max(times) - at
            rejected = count(flow.db["meetings"], "select count(*) from rejected_intake")
            if len(fresh) + (rejected - rejected_before) >= len(published):
                break
            if grace.passed():
                timed_out = True
                break
        if now - started >= next_progress:
            row = sampler.sample("stream", now - started, flow.snapshot())
            print(progress_line(row), flush=True)
            next_progress += progress_every
        if deadline.passed():
            timed_out = True
            break
        eventlet.sleep(0.5)
    row = sampler.sample("stream", time.time() - started, flow.snapshot())
    print(progress_line(row), flush=True)
    watcher.close()
    thread.kill()
    latencies = sorted(fresh.values())
    sent = sorted(published.values())
    if timed_out:
        members_of = stored_attendance(flow.db["meetings"], STREAM_PREFIX)
        late = [m for m in published if m not in fresh]
        print(f"phase 2: {len(late):,} meetings never fresh, e.g. " + "; ".join(
            f"{m} (stored: {m in members_of}, members never named after its publish: "
            f"{[x for x in members_of.get(m, ()) if watcher.first_after(x, published[m]) is None][:5]})"
            for m in late[:3]), flush=True)
    return {"n": n, "published": len(published), "fresh": len(fresh), "timed_out": timed_out,
            "p50": percentile(latencies, 0.50), "p95": percentile(latencies, 0.95),
            "p99": percentile(latencies, 0.99), "max": latencies[-1] if latencies else None,
            "rate": (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 else None,
            "events": watcher.events}


def print_profile(path: Path, lines: int = 25) -> None:
    import io
    import pstats
    if not path.exists():
        print(f"(no profile at {path}: the service did not stop cleanly)")
        return
    for key in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(str(path), stream=buffer).sort_stats(key).print_stats(lines)
        text = buffer.getvalue()
        body = text[text.find("   ncalls"):] if "   ncalls" in text else text
        print(f"\n-- {path.name}, top {lines} by {key} --\n{body.rstrip()}")


def report(figures: dict, rows: list[tuple]) -> None:
    print("\n== county_year: the synthetic county year through the whole flow ==")
    width = max(len(name) for name, *_ in rows)
    for name, value, target, mark in rows:
        shown = (f"{value:,.2f}" if isinstance(value, float) else
                 f"{value:,}" if isinstance(value, int) else str(value))
        print(f"{name:<{width}}  {shown:>14}  {target:<22} {mark}")
    print("json: " + json.dumps(figures, ensure_ascii=False, default=str))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a small county (2,000 members) and a 10-second stream")
    parser.add_argument("--members", type=int, help="county size (default 35,000)")
    parser.add_argument("--branches", type=int, help="default: 1,600 per 35,000 members")
    parser.add_argument("--townships", type=int, help="default: 20 (quick: 4)")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="share of the year's meetings to send in phase 1")
    parser.add_argument("--fresh-rate", type=float, default=50.0, help="phase 2 meetings/s")
    parser.add_argument("--fresh-seconds", type=float, help="phase 2 length (default 60, quick 10)")
    parser.add_argument("--timeout", type=float, default=2100,
                        help="overall seconds before the run gives up (prints what it has)")
    parser.add_argument("--catchup-timeout", type=float,
                        help="phase 1: seconds to wait for every service to catch up before "
                             "reporting it as a miss, with each service's rate and how far it "
                             "is (default 1,200: 3.6 times the target's 6 minutes; quick 300)")
    parser.add_argument("--progress", type=float, help="seconds between progress lines")
    parser.add_argument("--profile", default="",
                        help="comma-separated services to run under cProfile (top functions "
                             "printed at the end; slows them down)")
    args = parser.parse_args(argv)
    members = args.members or (2000 if args.quick else 35000)
    branches = args.branches or max(1, round(members * 1600 / 35000))
    townships = args.townships or (4 if args.quick else 20)
    fresh_seconds = args.fresh_seconds or (10.0 if args.quick else 60.0)
    progress_every = args.progress or (5.0 if args.quick else 20.0)
    catchup_timeout = args.catchup_timeout or (300.0 if args.quick else 1200.0)
    profile = {s.strip() for s in args.profile.split(",") if s.strip()}
    if profile - set(SERVICES):
        parser.error(f"--profile: services are {', '.join(SERVICES)}")

    overall = Deadline(args.timeout)
    # The last resort if something blocks despite the bounded waits: SIGALRM unwinds through
    # the `finally` below like Ctrl-C does.
    signal.signal(signal.SIGALRM, _exit_on_signal)
    signal.alarm(int(args.timeout + 120))

    t0 = time.monotonic()
    county = make_county(seed=7, townships=townships, branches=branches, members=members)
    reports = make_meetings(county)
    reports = reports[:int(len(reports) * args.fraction)]
    stream_count = int(args.fresh_rate * fresh_seconds)
    stream = []
    for report_ in make_meetings(county, seed=29)[:stream_count]:
        stream.append({**report_, "meeting_id": STREAM_PREFIX + report_["meeting_id"]})
    rows_n = sum(len(r["attendance"]) for r in reports)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the "
          f"run (other work on the machine slows every figure)", flush=True)
    print(f"synthetic county: {len(county.members):,} members, {branches:,} branches, "
          f"{townships} townships; the year: {len(reports):,} meetings, {rows_n:,} attendance "
          f"rows (generated in {time.monotonic() - t0:.1f} s)", flush=True)

    from orglife.devservers import LocalEndpoints
    bench = endpoints = sampler = None
    held: dict = {}
    exit_code = 1
    try:
        bench = Bench("county_year", now=NOW)
        if profile:
            bench.stop_timeout = 120  # a profiled service stops slowly; its profile needs it
        rules_path, differences = bench_rules(bench.work)
        print(f"bench rules {rules_path} differ from the shipped src/orglife/rules.yaml:")
        print("\n".join(differences), flush=True)
        endpoints = LocalEndpoints(bench.work / "endpoints").start()
        env = {**endpoints.config(), "ORGLIFE_RULES": str(rules_path)}
        print(f"local endpoints: SMTP {endpoints.smtp_url}, SMS {endpoints.sms_url}, "
              f"robot {endpoints.robot_url}", flush=True)
        setup = Deadline(min(900, max(overall.left(), 1)))
        bench.start(*SERVICES, env=env, profile=profile)
        print(f"services started (work folder {bench.work}"
              f"{'; profiling ' + ', '.join(sorted(profile)) if profile else ''})", flush=True)

        t = time.monotonic()
        register_county_organizations(bench, county.organizations)
        chunks = [county.members[i:i + 1000] for i in range(0, len(county.members), 1000)]
        concurrent_calls(bench, "members", "import_members", chunks, proxies=1)
        chosen = secretaries(county)
        concurrent_calls(bench, "members", "update_organization", chosen, proxies=8)
        n_members = len(county.members)
        for service in ("meetings", "scoring", "notifications"):
            wait_for(f"{service} to know every member",
                     lambda s=service: (bench.ping(s) or {}).get("known_members", 0) >= n_members,
                     setup)
        flow = Flow(bench)
        wait_for("notifications to know every branch secretary",
                 lambda: count(flow.db["notifications"], "select count(*) from org_copy where "
                               "kind = 'branch' and secretary_id is not null") >= len(chosen),
                 setup)
        setup_s = time.monotonic() - t
        print(f"county loaded through the services in {setup_s:.1f} s "
              f"({len(county.organizations):,} organizations, {n_members:,} members, "
              f"{len(chosen):,} secretaries)", flush=True)
        reference = dispatcher_rate(bench.amqp_uri)
        print(f"nameko EventDispatcher reference: {reference:,.0f} events/s", flush=True)
        baseline = flow.snapshot()  # notifications raised by the loading itself (alerts)

        sampler = Sampler(bench, endpoints, bench.work / "timeline.jsonl")
        # What phase 2 needs after phase 1: the stream, up to a minute for its last meetings,
        # and the cleanup.
        reserve = fresh_seconds * 1.5 + 90
        one = phase_throughput(bench, flow, sampler, reports,
                               Deadline(max(min(catchup_timeout, overall.left() - reserve), 1)),
                               progress_every, held)
        stop_process(held.pop("publisher", None))
        received = endpoint_counts(endpoints)
        by_kind = flow.notifications_by()
        two = phase_freshness(bench, flow, sampler, stream, args.fresh_rate,
                              Deadline(max(overall.left() - 30, 1)), progress_every, held)
        stop_process(held.pop("publisher", None))
        after = flow.snapshot()
        received_all = endpoint_counts(endpoints)
        rss = {name: bench.peak_rss_mb(name) for name in SERVICES}

        # -- figures --------------------------------------------------------------------------
        n = one["n"]
        elapsed = (one["all_done_at"] if one["caught_up"]
                   else one["finished"] - one["started"])
        state = one["state"]
        delivered = state["delivered"] - baseline["delivered"]
        span = ((one["last_delivered"] - one["first_delivered"])
                if one["first_delivered"] and one["last_delivered"] else None)
        sent = received["mails"] + received["sms"] + received["robot"]
        sent_span = (received["last"] - received["first"]) if received["first"] else None
        accounted = min(state["stored"], state["recorded"], state["scored"], state["seen"])
        figures = {
            "members": n_members, "branches": branches, "meetings": n,
            "attendance_rows": rows_n, "setup_s": round(setup_s, 1),
            "caught_up": one["caught_up"],
            "meetings_per_s": n / elapsed if one["caught_up"] else accounted / elapsed,
            "seconds_to_catch_up": elapsed,
            "publish_s": one["publish_s"],
            **{f"{name}_caught_up_s": one["caught"].get(name) for name in SERVICES},
            "rejected_intake": state["rejected"], "parked": one["parked"],
            "intake_waiting": state["waiting"],
            "notifications_delivered": delivered,
            "notifications_delivered_per_s": delivered / span if span else None,
            "notifications_delivered_per_s_whole_flow": delivered / elapsed,
            "notifications_pending_not_due": state["pending"] - state["due"],
            "endpoint_mails": received["mails"], "endpoint_sms": received["sms"],
            "endpoint_robot": received["robot"],
            "endpoint_received_per_s": sent / sent_span if sent_span else None,
            "notifications_by_kind_channel_status": by_kind,
            "freshness_rate_per_s": two["rate"], "freshness_meetings": two["published"],
            "freshness_measured": two["fresh"],
            "freshness_p50_s": two["p50"], "freshness_p95_s": two["p95"],
            "freshness_p99_s": two["p99"], "freshness_max_s": two["max"],
            "scores_changed_events": two["events"],
            **{f"{name}_peak_rss_mb": rss[name] for name in SERVICES},
            **{f"{name}_cpu_s_phase1": round(v, 1) for name, v in one["cpu"].items()},
            "nameko_event_dispatcher_per_s": reference,
            "phase1_final_state": state,
            "phase1_recent_rates_per_s": {k: round(v, 1) for k, v in one["rates"].items()},
            "after_stream": {k: after[k] for k in ("stored", "rejected", "delivered", "due")},
            "endpoints_total": {k: received_all[k] for k in ("mails", "sms", "robot")},
            "pids": {**{name: p.pid for name, p in bench.processes.items()},
                     "endpoints": endpoints.pids()},
        }
        target_s = n / TARGET_MEETINGS_PER_S
        rows = [
            ("meetings (phase 1)", n, "", ""),
            ("attendance rows", rows_n, "", ""),
            ("meetings/s end to end", figures["meetings_per_s"],
             f">= {TARGET_MEETINGS_PER_S:g}",
             verdict(figures["meetings_per_s"], TARGET_MEETINGS_PER_S, True)
             if one["caught_up"] else "MISS (not caught up)"),
            ("seconds until all caught up", elapsed, f"<= {target_s:,.0f} (at 300/s)",
             verdict(elapsed, target_s, False) if one["caught_up"] else "MISS"),
            ("  publishing took (s)", one["publish_s"], "", ""),
        ]
        progress_of = {"meetings": "stored", "members": "recorded", "scoring": "scored",
                       "notifications": "seen"}
        for name in SERVICES:
            value = one["caught"].get(name)
            if value is None:
                key = progress_of[name]
                speed = one["rates"].get(key, 0.0)
                left = n - state[key] - state["rejected"]
                value = (f"not caught up: {state[key]:,} of {n:,} meetings, "
                         f"{speed:,.0f}/s lately")
                if name == "scoring" and state["dirty"]:
                    value += f", {state['dirty']:,} dirty marks"
                if name == "notifications" and state["due"]:
                    drain = -one["rates"].get("due", 0.0)
                    value += (f", {state['due']:,} due unsent, sending "
                              f"{one['rates'].get('delivered', 0.0):,.0f}/s lately")
                    if drain > 0:
                        value += f" (backlog gone in ~{state['due'] / drain:,.0f} s)"
                elif speed > 0 and left > 0:
                    value += f" (~{left / speed:,.0f} s more)"
            rows.append((f"  {name} caught up at (s)", value, "", ""))
        rows += [
            ("rejected intake", state["rejected"], "0 (the data are valid)",
             "PASS" if state["rejected"] == 0 else "MISS"),
            ("parked messages", one["parked"], "0", "PASS" if one["parked"] == 0 else "MISS"),
            ("notifications delivered (phase 1)", delivered, "", ""),
            ("  delivered/s, first to last", figures["notifications_delivered_per_s"] or "n/a",
             "(no target)", ""),
            ("  delivered/s over the whole flow",
             figures["notifications_delivered_per_s_whole_flow"], "(no target)", ""),
            ("  received: mails / sms / robot",
             f"{received['mails']:,} / {received['sms']:,} / {received['robot']:,}", "", ""),
            ("  received/s at the endpoints", figures["endpoint_received_per_s"] or "n/a",
             "(no target)", ""),
            ("  pending, not due (retry later)", figures["notifications_pending_not_due"],
             "", ""),
            (f"freshness p50 (s) at {args.fresh_rate:g}/s", two["p50"], "(no target)", ""),
            (f"freshness p95 (s) at {args.fresh_rate:g}/s", two["p95"],
             f"<= {TARGET_FRESHNESS_P95_S:g}",
             verdict(two["p95"], TARGET_FRESHNESS_P95_S, False)
             if not two["timed_out"] else "MISS (some never fresh)"),
            ("  measured / fed (achieved rate)",
             f"{two['fresh']:,} / {two['published']:,} ({two['rate'] or 0:.1f}/s)", "", ""),
        ]
        for name in SERVICES:
            rows.append((f"{name} peak RSS (MB)", rss[name], f"<= {TARGET_RSS_MB:g}",
                         verdict(rss[name], TARGET_RSS_MB, False)))
        rows.append(("nameko EventDispatcher (events/s)", reference, "(reference)", ""))
        cpu = one["cpu"]
        rows.append(("CPU s in phase 1: mem/mtg/sco/ntf/rabbit/smtp/sms",
                     "/".join(f"{cpu.get(k, 0):.0f}" for k in
                              ("members", "meetings", "scoring", "notifications", "broker",
                               "smtp", "sms")), f"(of {2 * elapsed:,.0f} on 2 cores)", ""))
        report(figures, rows)
        print("notifications (phase 1) by kind/channel/status: " +
              ", ".join(f"{k} {v:,}" for k, v in by_kind.items()))
        print(f"timeline (queue depths, counts, CPU per sample): {bench.work}/timeline.jsonl")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), "
              f"{os.getloadavg()[1]:.1f} (5 min)")
        exit_code = 0 if one["caught_up"] and not two["timed_out"] else 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        signal.alarm(0)
        steps = [("publisher", lambda: stop_process(held.get("publisher"))),
                 ("watcher", lambda: held["watcher"].close() if "watcher" in held else None),
                 ("sampler", lambda: sampler.close() if sampler is not None else None),
                 ("services and broker", lambda: bench.close() if bench is not None else None),
                 ("local endpoints", lambda: endpoints.stop() if endpoints is not None
                  else None)]
        for what, step in steps:  # each one whatever happened to the one before
            try:
                step()
            except Exception as exc:  # noqa: BLE001
                print(f"cleanup: stopping the {what} failed: {type(exc).__name__}: {exc}",
                      file=sys.stderr)
                exit_code = 1
    for service in sorted(profile):
        print_profile(bench.profile_path(service))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
