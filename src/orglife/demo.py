"""`./orglife demo`: everything started, a demo county loaded through the event flow, and the
overview a county admin looks at.

1. The stack: the demo's own local endpoints (an SMTP sink, an SMS gateway and a work-chat robot
   recorder, `orglife.devservers`, detached under ORGLIFE_HOME/devservers) and the demo's copy of
   the rules (follow-ups without the 10-minute grace, no quiet hours:
   ORGLIFE_HOME/demo/rules.yaml); then what `up --detach` does, or, when the stack already
   runs, a restart of notifications if it was started with other channels or rules. Explicit
   ORGLIFE_SMTP_URL, ORGLIFE_RULES... win.
2. The county (`orglife.democounty`, deterministic): organizations and members by RPC, then
   secretaries, township officers and robots; a year of meetings and activities, most published
   on `intake.events` by a peer account as a check-in system would, the last days' logged by RPC
   as a secretary would, the coming week's scheduled; then scoring's daily run. A home keeps
   the county (year and townships) it loaded first (ORGLIFE_HOME/demo/county.json).
3. Waiting until the flow settles: queues empty, outboxes empty, notifications sent or waiting
   for a reason (quiet hours, a reminder's time).
4. The overview, and how to explore further.

Every write is idempotent (fixed ids, the same reports, intake event ids derived from the
record ids), so running it again changes nothing and prints the same overview.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
)
from rich.table import Table

from orglife import stack as launcher
from orglife.broker import BootstrapError
from orglife.common.clock import Clock
from orglife.common.config import DEFAULT_RULES, Settings, write_private
from orglife.common.vocabulary import LABELS, label
from orglife.democounty import COUNTY_ID, DemoCounty, make_demo_county

PEER_ACCOUNT = "demo-checkin"  # the check-in system's broker account (intake only)
EVENT_IDS = uuid.UUID("6b1f7a52-0d3e-4c59-9a0e-5d2c8e41f7b3")  # intake event ids, by record id
RPC_DAYS = 3  # what was held in the last days is logged by RPC, at the secretary's desk
SCHEDULE_DAYS = 7  # the plan's next meetings of the coming week are scheduled (reminders)
SCHEDULE_TYPES = ("theme_day", "lecture", "branch_assembly", "study")
SCHEDULE_MAX = 8
REPORT_LAG = timedelta(hours=1)  # a meeting is reported an hour after it began, at the soonest
IMPORT_CHUNK = 300
PUBLISH_BATCH = 200
SETTLE_QUIET = 6.0  # seconds of nothing moving (scoring drains risks every 3 s)
SETTLE_TIMEOUT = 900.0
PHONE = re.compile(r"(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")
EMAIL = re.compile(r"([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


class DemoError(Exception):
    """Something the demo cannot go on from; the message says what to do."""


DEFAULT_TOWNSHIPS = 3  # about a minute and a half on 2 cores; --townships up to 8


def run_demo(settings: Settings, fresh: bool = False, yes: bool = False,
             townships: int | None = None, console: Console | None = None) -> int:
    from orglife.cli.common import console as cli_console
    console = console or cli_console
    began = time.monotonic()
    try:
        if fresh:
            reset_home(settings, yes, console)
        year, townships = choose_county(settings, townships)
        rules_note = prepare_rules(settings)
        uri = ensure_stack(settings, console, fresh)
        with Demo(settings, uri, console) as demo:
            demo.load(year, townships)
            overview = demo.overview()
        overview["rules_note"] = rules_note
        overview["seconds"] = time.monotonic() - began
        print_overview(console, overview, settings)
        return 0
    except BootstrapError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 3
    except DemoError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted.[/] The stack keeps running: `./orglife demo` again "
                      "goes on where it stopped; `./orglife down` stops it.")
        return 130


# -- 1. the stack --------------------------------------------------------------------------------
def county_file(settings: Settings) -> Path:
    """Which demo county this home holds (its year and townships), written before loading."""
    return settings.home / "demo" / "county.json"


def choose_county(settings: Settings, townships: int | None) -> tuple[int, int]:
    """The year and townships of the county to load: those this home holds already (another
    count, or another year, would reuse its ids for other records: refused), else this year's
    with `townships` (DEFAULT_TOWNSHIPS)."""
    year = Clock(settings.tz, settings.now).today().year
    try:
        held = json.loads(county_file(settings).read_text())
    except (OSError, ValueError):
        held = None
    if not isinstance(held, dict):
        return year, townships or DEFAULT_TOWNSHIPS
    wanted = townships or held.get("townships")
    if (held.get("year"), held.get("townships")) != (year, wanted):
        raise DemoError(f"this home holds the demo county of {held.get('year')} with "
                        f"{held.get('townships')} townships: `./orglife demo` without "
                        f"--townships goes on with it; `./orglife demo --fresh` starts again "
                        f"(or use another ORGLIFE_HOME)")
    return year, wanted


def reset_home(settings: Settings, yes: bool, console: Console) -> None:
    """--fresh: stop what runs for this home and delete its state (databases, broker data,
    logs, the demo's endpoints and mailbox). The secret and the saved token stay."""
    home = settings.home
    if not yes:
        if not sys.stdin.isatty():
            raise DemoError("--fresh deletes this home's data: confirm with --yes")
        import typer
        if not typer.confirm(f"Delete the databases, broker data, logs and demo mailbox under "
                             f"{home} and start again?", default=False):
            raise DemoError("nothing deleted")
    launcher.down(settings, say=console.print)
    if not settings.amqp_uri:
        broker = launcher.private_broker(settings)
        if broker.running():
            console.print("stopping this home's RabbitMQ node")
            broker.stop()
    for name in ("db", "run", "devservers", "demo") + (() if settings.amqp_uri else ("rabbitmq",)):
        path = home / name
        if path.is_dir():
            shutil.rmtree(path)
    console.print(f"[green]fresh start[/] under {home}")


def prepare_rules(settings: Settings) -> str:
    """The demo's copy of the rules (ORGLIFE_HOME/demo/rules.yaml): the shipped file with the
    absence follow-ups' grace set to 0, so that follow-ups of the last two weeks go out during
    the demo. An explicit ORGLIFE_RULES is used as it is. Returns a sentence for the output."""
    if os.environ.get("ORGLIFE_RULES"):
        return f"rules: {os.environ['ORGLIFE_RULES']} (ORGLIFE_RULES)"
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    changed, count = re.subn(r"(?m)^(\s*absence_followup_delay_minutes:\s*)\d+(\.\d+)?",
                             r"\g<1>0", text)
    changed, quiet = re.subn(r"(?m)^(\s*quiet_hours:\s*).*$", r'\g<1>""  # the demo: none',
                             changed)
    if count != 1 or quiet != 1:
        raise DemoError(f"cannot find absence_followup_delay_minutes and quiet_hours in "
                        f"{DEFAULT_RULES}")
    header = ("# ./orglife demo's copy of src/orglife/rules.yaml: the same rules, except that\n"
              "# absence follow-ups go out without the 10-minute grace and there are no quiet\n"
              "# hours, so that what is sent shows whatever the hour (see the lines below).\n")
    path = launcher.demo_rules_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != header + changed:
        path.write_text(header + changed, encoding="utf-8")
    return ("rules: the shipped rules, except that absence follow-ups go out without the "
            "10-minute grace and there are no quiet hours (22:00–07:00 by default), so that "
            f"messages go out during the demo (the demo's copy: {path})")


def ensure_stack(settings: Settings, console: Console, fresh: bool = False) -> str:
    """The local endpoints, then the stack (started, or adjusted); the admin broker URI."""
    system = launcher.system_of(settings)
    running = launcher.running_services(settings)
    explicit = [key for key in launcher.ENDPOINT_NAMES if os.environ.get(key)]
    if explicit:
        console.print(f"[yellow]{', '.join(explicit)} set in the environment: the services "
                      f"send there instead of to the demo's local endpoints[/]")
    from orglife.cluster import province_env, start_province
    if not running:
        launcher.start_demo_endpoints(settings)
        if settings.amqp_uri and fresh:
            purge_queues(settings, system)
        # the cluster and PostgreSQL an earlier `up --cluster N --postgres` left in this home
        settings = start_province(settings, say=console.print)
        launcher.start_stack(settings, say=console.print)  # names the endpoints
        return launcher.broker_uri(settings)
    os.environ.update(province_env(settings))  # quorum queues, if the home runs a cluster
    names = {name.rsplit("-", 1)[0] for name in running}
    missing = sorted(set(system.names) - names)
    if missing:
        raise DemoError(f"this home runs {', '.join(sorted(names))} but not "
                        f"{', '.join(missing)}: `./orglife down`, then `./orglife demo` again")
    urls = launcher.start_demo_endpoints(settings)
    console.print(f"local endpoints under {launcher.endpoints_dir(settings)}: "
                  + launcher.describe_endpoints(urls))
    uri = launcher.broker_uri(settings)
    for service in system.names:
        same = launcher.started_with(settings, uri, service)
        if same["clock"] is False:
            raise DemoError(f"{service} runs with another ORGLIFE_NOW or ORGLIFE_TZ than this "
                            f"shell has: run the demo with the settings `up` had, or "
                            f"`./orglife down` first")
        if service == "notifications" and not same["channels"]:
            console.print("notifications runs without the demo's endpoints or rules: "
                          "restarting it")
            launcher.restart(settings, service, say=console.print)
    console.print(f"[green]orglife is up[/] (home {settings.home})")
    return uri


def purge_queues(settings: Settings, system) -> None:
    """--fresh on an external broker: nothing left queued from before."""
    from kombu import Connection
    with Connection(settings.amqp_uri) as conn:
        launcher.declare(settings.amqp_uri, system)
        for sub in system.subscriptions:
            for name in (sub.queue_name, sub.parking_queue_name):
                conn.channel().queue_purge(name)


# -- 2. the county -------------------------------------------------------------------------------
class Demo:
    """The demo's session with the stack: one RPC proxy (a county admin's token), the admin
    broker URI, the clock, and what it reported."""

    def __init__(self, settings: Settings, uri: str, console: Console):
        self.settings = settings
        self.uri = uri
        self.console = console
        self.system = launcher.system_of(settings)
        self.broker = None if settings.amqp_uri else launcher.private_broker(settings)
        self.clock = Clock(settings.tz, settings.now)
        self.stats: dict = {}
        self.county: DemoCounty | None = None

    def __enter__(self) -> "Demo":
        from nameko.standalone.rpc import ClusterRpcProxy
        from orglife.common.auth import mint_token
        token = mint_token(self.settings.secret, "demo", "county_admin")
        self._proxy = ClusterRpcProxy({"AMQP_URI": self.uri},
                                      context_data={"authorization": f"Bearer {token}"},
                                      timeout=180)
        self.rpc = self._proxy.start()
        self.saved_token = self._save_token(token)
        return self

    def __exit__(self, *exc_info) -> None:
        self._proxy.stop()

    def _save_token(self, token: str) -> bool:
        """A county admin's token as this home's CLI identity, unless there is one already
        (so that `./orglife score ...` works right after the demo)."""
        path = self.settings.home / "token"
        if self.settings.token or path.exists():
            return False
        write_private(path, token)
        return True

    def call(self, service: str, method: str, *args, **kwargs):
        try:
            return getattr(getattr(self.rpc, service), method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - named for the user, with what was asked
            detail = getattr(exc, "errors", None) or str(exc)
            raise DemoError(f"{service}.{method} refused: {type(exc).__name__}: {detail}") \
                from None

    # -- loading ---------------------------------------------------------------------------------
    def load(self, year: int, townships: int) -> None:
        now = self.clock.now()
        local_now = now.astimezone(self.clock.tz).replace(tzinfo=None)
        county = self.county = make_demo_county(year, townships)
        path = county_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"year": year, "townships": townships,
                                    "county_id": COUNTY_ID}) + "\n")
        cutoff = local_now - REPORT_LAG
        meetings, activities = county.held_by(cutoff)
        recent = cutoff - timedelta(days=RPC_DAYS)
        by_rpc = [m for m in meetings if _at(m["held_at"]) > recent]
        acts_by_rpc = [a for a in activities if _at(a["held_at"]) > recent]
        upcoming = [m for m in county.meetings if m["type"] in SCHEDULE_TYPES
                    and local_now + REPORT_LAG < _at(m["held_at"])
                    <= local_now + timedelta(days=SCHEDULE_DAYS)][:SCHEDULE_MAX]
        intake = sorted(
            [("meeting_reported", m) for m in meetings if _at(m["held_at"]) <= recent]
            + [("activity_reported", a) for a in activities if _at(a["held_at"]) <= recent],
            key=lambda item: item[1]["held_at"])
        self.stats.update(
            now=now, local_now=local_now, meetings=len(meetings), activities=len(activities),
            intake=len(intake), rpc_meetings=len(by_rpc), rpc_activities=len(acts_by_rpc),
            scheduled=len(upcoming), visits=sum(1 for a in activities
                                                if a["kind"] == "household_visit"))
        self.stats["before"] = self.counts()

        progress = Progress(SpinnerColumn(), TextColumn("{task.description:<46}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=self.console)
        with progress:
            self.register(progress, county)
            self.settle(progress, "members reaching meetings, scoring, notifications", 2.0)
            self.name_roles(progress, county)
            self.report_intake(progress, intake, len(meetings) - len(by_rpc))
            self.report_rpc(progress, by_rpc, acts_by_rpc, upcoming)
            # (the daily run recomputes every branch and streak: a short quiet will do)
            self.settle(progress, "scores, alerts and notifications catching up", 2.0)
            task = progress.add_task("scoring's daily run (overdue, silent, due soon, "
                                     "at risk)", total=1)
            self.stats["daily"] = self.call("scoring", "run_daily")
            progress.update(task, completed=1)
            self.settle(progress, "alerts reaching notifications, sending")
        self.stats["after"] = self.counts()

    def register(self, progress: Progress, county: DemoCounty) -> None:
        orgs = progress.add_task("registering organizations", total=len(county.organizations))
        for org in county.organizations:
            payload = {key: value for key, value in org.items() if value is not None}
            self.call("members", "register_organization", payload)
            progress.advance(orgs)
        task = progress.add_task("registering members (import)", total=len(county.members))
        created = updated = 0
        for start in range(0, len(county.members), IMPORT_CHUNK):
            rows = county.members[start:start + IMPORT_CHUNK]
            result = self.call("members", "import_members", rows)
            if result.get("errors"):
                first = result["errors"][0]
                raise DemoError(f"import_members refused {len(result['errors'])} rows, e.g. row "
                                f"{first.get('row')} {first.get('field')}: {first.get('message')}")
            created += len(result.get("created") or [])
            updated += len(result.get("updated") or [])
            progress.advance(task, len(rows))
        self.stats.update(members_created=created, members_updated=updated)

    def name_roles(self, progress: Progress, county: DemoCounty) -> None:
        """Each branch's secretary, each township's officer and work-chat robot (a path and an
        access token of its own on the local robot recorder, so its posts can be told apart)."""
        from orglife.devservers import robot_url_for
        folder = launcher.endpoints_dir(self.settings)
        task = progress.add_task("naming secretaries, officers and robots",
                                 total=len(county.secretaries))
        for org_id, member_id in county.secretaries.items():
            changes = {"org_id": org_id, "secretary_id": member_id}
            if org_id in county.townships:
                robot = robot_url_for(folder, org_id, f"access_token=demo-{org_id}")
                if robot:
                    changes["robot_url"] = robot
            self.call("members", "update_organization", changes)
            progress.advance(task)

    def report_intake(self, progress: Progress, items: list[tuple[str, dict]],
                      meetings_wanted: int) -> None:
        """Publish as the check-in system does (its own account, confirms per batch), in the
        order things happened; then follow meetings storing them."""
        peer = self.uri if self.settings.amqp_uri else \
            self.broker.peer_account(PEER_ACCOUNT)
        rejected_before = self.call("meetings", "list_rejected_intake", {"limit": 1})["total"]
        task = progress.add_task("check-in system → intake.events", total=len(items))
        publish(peer, items, lambda n: progress.advance(task, n))
        stored = progress.add_task("meetings stored by the meetings service",
                                   total=meetings_wanted)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        first_meeting = f"{self.county.year}-01-01"
        while True:
            done = self.call("meetings", "list_meetings",
                             {"under": COUNTY_ID, "status": "logged", "from": first_meeting,
                              "limit": 1})["total"]
            progress.update(stored, completed=min(done, meetings_wanted))
            if done >= meetings_wanted:
                break
            rejected = self.call("meetings", "list_rejected_intake",
                                 {"limit": 1})["total"] - rejected_before
            if rejected > 0:
                raise DemoError(f"meetings rejected {rejected} intake reports: "
                                f"`./orglife intake rejected` lists them")
            if time.monotonic() > deadline:
                raise DemoError(f"meetings stored {done} of {meetings_wanted} in "
                                f"{SETTLE_TIMEOUT:.0f} s: see `./orglife status`")
            time.sleep(1.0)  # (counting is a query of meetings' own: not too often)

    def report_rpc(self, progress: Progress, meetings: list[dict], activities: list[dict],
                   upcoming: list[dict]) -> None:
        task = progress.add_task("secretaries: recent meetings and activities (RPC)",
                                 total=len(meetings) + len(activities))
        for meeting in meetings:
            self.call("meetings", "log_meeting", meeting)
            progress.advance(task)
        for activity in activities:
            self.call("meetings", "log_activity", activity)
            progress.advance(task)
        task = progress.add_task("secretaries: the coming week's meetings (scheduled)",
                                 total=len(upcoming))
        for meeting in upcoming:
            scheduled = {key: value for key, value in meeting.items()
                         if key not in ("attendance", "minutes")}
            self._schedule(scheduled)
            progress.advance(task)

    def _schedule(self, meeting: dict) -> None:
        """Scheduled once; a run after it was already logged (a demo run again later) has
        nothing to schedule."""
        try:
            self.rpc.meetings.schedule_meeting(meeting)
        except Exception as exc:  # noqa: BLE001
            if type(exc).__name__ != "Conflict":
                raise DemoError(f"meetings.schedule_meeting refused: {type(exc).__name__}: "
                                f"{getattr(exc, 'errors', None) or exc}") from None

    # -- waiting -----------------------------------------------------------------------------------
    def flow(self) -> dict:
        """What is still moving: queued and unacknowledged messages, outbox backlogs, intake
        waiting for members, notifications by status."""
        queues = launcher.queue_depths(self.uri, self.system, self.broker)
        queued = sum((q["messages"] or 0) + (q["unacked"] or 0) for q in queues
                     if not q["parked"])
        parked = sum(q["messages"] or 0 for q in queues if q["parked"])
        health = {name: self._health(name) for name in self.system.names}
        backlog = sum(h.get("outbox_backlog") or 0 for h in health.values())
        waiting = (health.get("meetings") or {}).get("intake_waiting") or 0
        statuses = Counter()
        for row in self.call("notifications", "notification_summary")["items"]:
            statuses[row["status"]] += row["count"]
        return {"queued": queued, "parked": parked, "backlog": backlog, "waiting": waiting,
                "notifications": dict(statuses)}

    def _health(self, service: str) -> dict:
        try:
            return getattr(self.rpc, service).health() or {}
        except Exception:  # noqa: BLE001 - a service without health: nothing to wait for
            return {}

    def settle(self, progress: Progress, what: str, quiet: float = SETTLE_QUIET) -> None:
        """Until nothing moves for SETTLE_QUIET seconds: queues and outboxes empty, nothing
        sending, the notification counts still (what is pending waits for its time)."""
        task = progress.add_task(f"waiting: {what}", total=None)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        last, since = None, time.monotonic()
        while True:
            state = self.flow()
            sent = state["notifications"]
            progress.update(task, description=(
                f"waiting: {what} (queued {state['queued']}, outbox {state['backlog']}, "
                f"sent {sent.get('delivered', 0)}, pending {sent.get('pending', 0)})"))
            moving = state["queued"] or state["backlog"] or state["waiting"] or \
                sent.get("sending")
            signature = json.dumps(state, sort_keys=True)
            if moving or signature != last:
                last, since = signature, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            if time.monotonic() > deadline:
                raise DemoError(f"the flow did not settle in {SETTLE_TIMEOUT:.0f} s "
                                f"({state}): see `./orglife status`")
            time.sleep(1.0)
        self.stats["parked"] = state["parked"]
        progress.update(task, total=1, completed=1, description=f"settled: {what}")

    # -- what an admin looks at -------------------------------------------------------------------
    def counts(self) -> dict:
        try:
            meetings = self.rpc.meetings.list_meetings({"under": COUNTY_ID, "limit": 1})["total"]
        except Exception:  # noqa: BLE001 - the demo county is not there yet (first run)
            meetings = 0
        summary = self.call("notifications", "notification_summary")["items"]
        return {"meetings": meetings, "notifications": sum(row["count"] for row in summary)}

    def overview(self) -> dict:
        county = self.county
        out = {"county": county, "stats": self.stats, "today": self.clock.today(),
               "saved_token": self.saved_token}
        out["unevenness"] = self.call("scoring", "unevenness", COUNTY_ID)
        out["branches"] = self.call("scoring", "ranking", COUNTY_ID, None, "branch", 5000)
        out["members"] = self.call("scoring", "ranking", COUNTY_ID, None, "member", 5000)
        out["at_risk"] = self.call("scoring", "members_at_risk", COUNTY_ID)
        out["silent"] = self.call("scoring", "branch_compliance", county.silent_branch)
        out["summary"] = self.call("notifications", "notification_summary", COUNTY_ID)["items"]
        out["pending"] = self._all_notifications({"status": "pending", "org_id": COUNTY_ID})
        out["example"] = self._example()
        out["endpoints"] = launcher.endpoint_status(self.settings)
        out["robot_posts"] = self._robot_posts()
        out["rules"] = _rules_in_use(self.settings)
        return out

    def _all_notifications(self, filters: dict) -> list[dict]:
        items, offset = [], 0
        while True:
            page = self.call("notifications", "list_notifications",
                             {**filters, "limit": 1000, "offset": offset})
            items += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items

    def _example(self) -> dict | None:
        """One message as its recipient reads it: a follow-up sent to an absentee, else a
        secretary's digest, else an at-risk notice; a waiting one if none was sent yet."""
        for status in ("delivered", "pending"):
            for kind in ("absence_followup", "absence_digest", "member_at_risk", "due_soon"):
                page = self.call("notifications", "list_notifications",
                                 {"kind": kind, "status": status, "org_id": COUNTY_ID,
                                  "limit": 20})
                items = [n for n in page["items"] if n["channel"] in ("email", "sms")] \
                    or page["items"]
                if items:
                    return items[0]
        return None

    def _robot_posts(self) -> dict[str, int]:
        from orglife.devservers import read_records
        posts: Counter = Counter()
        for record in read_records(launcher.endpoints_dir(self.settings) / "http" /
                                   "robot.jsonl"):
            path = record.get("path", "").split("?", 1)[0]
            posts[path.rsplit("/", 1)[-1] if path.count("/") > 1 else "default"] += 1
        return dict(posts)


def _rules_in_use(settings: Settings):
    from orglife.common.rules import load_rules
    path = os.environ.get("ORGLIFE_RULES") or (
        launcher.demo_rules_path(settings) if launcher.demo_rules_path(settings).exists()
        else DEFAULT_RULES)
    return load_rules(path, settings.tz)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- publishing as a peer system -----------------------------------------------------------------
def publish(uri: str, items: list[tuple[str, dict]], advance, batch: int = PUBLISH_BATCH) -> None:
    """Envelopes on `intake.events` (persistent JSON, publisher confirms drained per batch),
    each with an event id derived from its record's id: published again, meetings' inbox
    drops it (bench/publish_intake.py does the same across broker outages)."""
    import amqp
    from kombu import Connection

    wrapper = Connection(uri, connect_timeout=10)
    wrapper.connect()
    connection = wrapper.connection
    try:
        channel = connection.channel()
        channel.confirm_select()
        state = {"published": 0, "confirmed": 0}
        channel.events["basic_ack"].add(
            lambda tag, multiple: state.__setitem__("confirmed", max(state["confirmed"], tag)))
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            occurred = datetime.now(timezone.utc).isoformat()
            for event_type, record in chunk:
                ident = record.get("meeting_id") or record["activity_id"]
                envelope = {"event_id": str(uuid.uuid5(EVENT_IDS, f"{event_type}:{ident}")),
                            "event_type": event_type, "schema_version": 1,
                            "occurred_at": occurred, "source": "intake", "data": record}
                channel.basic_publish(
                    amqp.Message(json.dumps(envelope, ensure_ascii=False),
                                 content_type="application/json", content_encoding="utf-8",
                                 delivery_mode=2),
                    exchange="intake.events", routing_key=event_type)
                state["published"] += 1
            deadline = time.monotonic() + 60
            while state["confirmed"] < state["published"]:
                if time.monotonic() > deadline:
                    raise DemoError("the broker confirmed no intake report within 60 s")
                connection.drain_events(timeout=5)
            advance(len(chunk))
    finally:
        connection.close()


# -- 4. printing -----------------------------------------------------------------------------------
def mask(text: str) -> str:
    """Phone numbers as the dashboard shows them (138****8000), e-mail addresses as
    w***@example.com."""
    return EMAIL.sub(r"\1***@\2", PHONE.sub(r"\1****\2", text or ""))


def pct(value) -> str:
    return "" if value is None else f"{value * 100:.0f}%"


LIGHT_STYLE = {"red": "red", "yellow": "yellow", "green": "green"}


def light(code: str | None) -> str:
    return f"[{LIGHT_STYLE.get(code, 'white')}]● {LABELS['light'].get(code, code or '')}[/]"


def print_overview(console: Console, o: dict, settings: Settings) -> None:
    county, stats = o["county"], o["stats"]
    branches = o["branches"]["items"]
    members = o["members"]["items"]
    names = {org["org_id"]: org["name"] for org in county.organizations}
    local_now = stats["local_now"]
    console.rule(f"[bold]{names[COUNTY_ID]}（演示）: what the county admin sees, "
                 f"{o['today']} {local_now:%H:%M} county time")
    mobile = sum(1 for m in county.members if m["mobile"])
    source_orgs = _under(county, county.source_township)
    unreachable = sum(1 for m in county.members if not m["phone"] and not m["email"])
    console.print(
        f"{len(county.townships)} township{'s' if len(county.townships) != 1 else ''}, "
        f"{len(branches)} branches, {len(members)} members "
        f"({mobile} mobile members working elsewhere, {unreachable} with neither phone nor "
        f"e-mail). This year so far: {stats['meetings']} meetings and {stats['activities']} "
        f"activities, {stats['intake']} of them reported through intake by a check-in system, "
        f"{stats['rpc_meetings'] + stats['rpc_activities']} logged by secretaries (RPC); "
        f"{stats['scheduled']} meetings scheduled for the coming week. "
        f"{names[county.source_township]} (shaped like the source report): "
        f"{sum(1 for b in county.branches if b['org_id'] in source_orgs)}"
        f" organizations; {len(county.cadres)} cadres visited {stats['visits']} contact "
        f"households.")

    # compliance by category
    table = Table(title="Compliance by branch category (组织生活不平衡)", title_justify="left")
    for header in ("category", "branches", "mean", "min", "max", "below 60%"):
        table.add_column(header, justify="left" if header == "category" else "right")
    for row in sorted(o["unevenness"]["categories"], key=lambda r: -(r["mean"] or 0)):
        table.add_row(label(row["category"], "category"), str(row["branches"]), pct(row["mean"]),
                      pct(row["min"]), pct(row["max"]), str(row["below_0_6"]),
                      style="red" if row["below_0_6"] else None)
    console.print(table)

    # lights
    lights = Counter(item["light"] for item in branches)
    silent = o["silent"]
    console.print(
        f"Lights (三色预警): {light('green')} {lights.get('green', 0)}   "
        f"{light('yellow')} {lights.get('yellow', 0)}   {light('red')} {lights.get('red', 0)}"
        f"   — silent: {names[county.silent_branch]} ({county.silent_branch}), no meeting for "
        f"{silent.get('silent_days')} days (last {silent.get('last_meeting_on')})")

    # top and bottom
    def ranking_table(title: str, items: list[dict]) -> Table:
        table = Table(title=title, title_justify="left")
        for header in ("rank", "branch", "category", "score", "compliance", "light"):
            table.add_column(header, justify="right" if header in ("rank", "score",
                                                                   "compliance") else "left")
        for item in items:
            table.add_row(str(item["rank"]), f"{item['name']} ({item['branch_id']})",
                          LABELS["category"].get(item.get("category"), ""),
                          f"{item['score']:.1f}", pct(item.get("compliance")),
                          light(item.get("light")))
        return table
    console.print(ranking_table("Top 5 branches (branch score: 70 × compliance + 30 × "
                                "attendance)", branches[:5]))
    console.print(ranking_table("Bottom 5 branches", branches[-5:]))

    # at risk
    risk = [item for item in o["at_risk"]["items"] if item.get("level")]
    levels = Counter(item["level"] for item in risk)
    table = Table(title=f"Members at risk: {levels.get('review', 0)} review, "
                        f"{levels.get('alert', 0)} alert, {levels.get('notice', 0)} notice "
                        f"(the system flags, people decide)", title_justify="left")
    for header in ("member", "branch", "months missed", "level", "since"):
        table.add_column(header)
    for item in risk[:10]:
        months = [m["month"] for m in item.get("months_list") or []]
        table.add_row(f"{item['name']} ({item['member_id']})", names.get(item["branch_id"], ""),
                      str(item["months"]), label(item["level"], "risk_level"),
                      min(months) if months else "",
                      style={"review": "bold red", "alert": "red"}.get(item["level"]))
    console.print(table)

    # grades
    grades = Counter(item.get("grade") for item in members if item.get("grade"))
    recommendations = Counter(item.get("recommendation") for item in members
                              if item.get("recommendation") and not item.get("grade"))
    mean = sum(item["score"] for item in members) / len(members) if members else 0
    console.print(
        "Points and grades so far (积分与等次, mean " + f"{mean:.1f}): " + "  ".join(
            f"{LABELS['grade'][g]} {grades.get(g, 0)}" for g in LABELS["grade"])
        + "   probationary: " + "  ".join(
            f"{LABELS['recommendation'][r]} {recommendations.get(r, 0)}"
            for r in LABELS["recommendation"]))

    # notifications
    print_notifications(console, o, settings)
    console.print(f"[dim]{o.get('rules_note', '')}[/]")

    # explore further
    print_explore(console, o, settings)


def _under(county: DemoCounty, org_id: str) -> set[str]:
    children = defaultdict(list)
    for org in county.organizations:
        children[org.get("parent_id")].append(org["org_id"])
    out, stack = set(), [org_id]
    while stack:
        current = stack.pop()
        out.add(current)
        stack += children[current]
    return out


def print_notifications(console: Console, o: dict, settings: Settings) -> None:
    stats, rules = o["stats"], o["rules"]
    rows: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for item in o["summary"]:
        rows[(item["kind"], item["channel"])][item["status"]] += item["count"]
    table = Table(title="Notifications by kind and channel (通知)", title_justify="left")
    for header in ("kind", "channel", "delivered", "waiting", "failed / unknown", "withdrawn"):
        table.add_column(header, justify="left" if header in ("kind", "channel") else "right")
    kinds = list(LABELS["notification_kind"])
    channels = list(LABELS["channel"])
    for (kind, channel), counts in sorted(rows.items(), key=lambda kv: (
            kinds.index(kv[0][0]) if kv[0][0] in kinds else 99,
            channels.index(kv[0][1]) if kv[0][1] in channels else 99)):
        table.add_row(label(kind, "notification_kind"), label(channel, "channel"),
                      str(counts["delivered"]), str(counts["pending"] + counts["sending"]),
                      str(counts["failed"] + counts["unknown"]), str(counts["withdrawn"]))
    console.print(table)

    # why the pending ones wait
    now = stats["now"]
    tz = settings_tz(settings)
    quiet = rules.quiet_hours
    quiet_end = quiet[1].strftime("%H:%M") if quiet else None
    waits: Counter = Counter()
    for item in o["pending"]:
        at = datetime.fromisoformat(item["next_attempt_at"] or item["not_before"])
        local = at.astimezone(tz)
        if at <= now + timedelta(seconds=5):
            waits["due now"] += 1
        elif item["kind"] == "meeting_reminder" and item["attempts"] == 0:
            waits["reminders, 24 h before their meeting"] += 1
        elif quiet_end and local.strftime("%H:%M") == quiet_end and item["attempts"] == 0:
            waits[f"quiet hours ({quiet[0]:%H:%M}–{quiet_end}): they go out at {quiet_end}"] += 1
        else:
            waits["retrying after a failed attempt"] += 1
    if waits:
        console.print("Waiting: " + "; ".join(f"{n} {why}" for why, n in waits.items()))
    local_now = stats["local_now"]
    if quiet and _in_window(local_now.time(), quiet):
        console.print(f"[yellow]It is {local_now:%H:%M} in the county, within the quiet hours: "
                      f"non-urgent messages wait until {quiet_end}; urgent ones (overdue "
                      f"branches, review-level members at risk) go out at once.[/]")
    raised = {kind: count for kind, count in
              ((stats.get("daily") or {}).get("raised") or {}).items() if count}
    if raised:
        console.print("Scoring's daily run raised: " + ", ".join(
            f"{kind} {count}" for kind, count in raised.items()) + " (alerts look forward "
            "from the day a branch was registered: none for periods that ended before)")

    example = o["example"]
    if example:
        state = "sent" if example["status"] == "delivered" else "waiting to be sent"
        console.print(Panel(
            Group(f"[bold]{mask(example['subject'])}[/]", "", mask(example["body"])),
            title=f"one message: {label(example['kind'], 'notification_kind')} via "
                  f"{label(example['channel'], 'channel')} ({state})", title_align="left",
            expand=False))

    endpoints = {row["endpoint"]: row for row in o["endpoints"]}
    if endpoints:
        names = {org["org_id"]: org["name"] for org in o["county"].organizations}
        robots = ", ".join(f"{names.get(robot, robot)} {n}"
                           for robot, n in sorted(o["robot_posts"].items()))
        console.print(
            f"What arrived at the local endpoints: {endpoints['smtp']['received']} e-mails, "
            f"{endpoints['sms']['received']} SMS, {endpoints['robot']['received']} robot posts"
            + (f" ({robots})" if robots else ""))
        folder = launcher.endpoints_dir(settings)
        console.print(f"  the mail landed in the Maildir {folder / 'smtp' / 'maildir'} (one file "
                      f"per message); SMS and robot posts in {folder / 'http'}/sms.jsonl and "
                      f"robot.jsonl")
    before, after = stats["before"], stats["after"]
    added = (after["meetings"] - before["meetings"], after["notifications"]
             - before["notifications"])
    console.print(f"This run added {added[0]} meetings and {added[1]} notifications"
                  + (" (the demo county was loaded already: nothing new)" if added == (0, 0)
                     else "") + f"; parked messages: {stats.get('parked', 0)}.")


def settings_tz(settings: Settings):
    from zoneinfo import ZoneInfo
    return ZoneInfo(settings.tz)


def _in_window(moment, window) -> bool:
    start, end = window
    if start == end:
        return False
    return start <= moment < end if start < end else (moment >= start or moment < end)


def _commands() -> set[str]:
    import typer.main

    from orglife.cli.app import app
    return set(typer.main.get_command(app).commands)


def print_explore(console: Console, o: dict, settings: Settings) -> None:
    county = o["county"]
    have = _commands()
    drifting = sorted(county.drifting, key=lambda m: county.drifting[m])
    member = drifting[0] if drifting else county.members[0]["member_id"]
    home = f"ORGLIFE_HOME={settings.home} " if os.environ.get("ORGLIFE_HOME") else ""
    lines = [
        ("./orglife status", "services, queues, outboxes, parked messages, the local endpoints"),
        ("./orglife notifications", "every message, its channel, status and text"),
        (f"./orglife score {member}", "a member drifting away: points line by line"),
        (f"./orglife compliance {county.silent_branch}", "the silent branch: slots met and missed"),
        (f"./orglife ranking {COUNTY_ID} --level branch", "every branch, best first"),
        (f"./orglife alerts {COUNTY_ID}", "silent and overdue branches, members at risk"),
        (f"./orglife at-risk {COUNTY_ID}", "each streak with the meetings missed"),
        (f"./orglife unevenness {county.source_township}", "one township by category"),
        ("./orglife dashboard", "the web page for admins"),
        (f".venv/bin/python -m orglife.devservers received --dir "
         f"{launcher.endpoints_dir(settings)}", "the mailbox, SMS and robot posts"),
        ("./orglife down", "stop it all (the data stays; ./orglife up starts it again)"),
    ]
    table = Table(title="Explore further" + (f" (with {home.strip()})" if home else ""),
                  title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for command, what in lines:
        word = command.split()[1] if command.startswith("./orglife") else None
        if word and word not in have:
            what += " (coming)"
        table.add_row(command, what)
    console.print(table)
    try:  # the overview of the demo county, signed in (SPEC §4, Dashboard)
        link = launcher.dashboard_url(settings, f"/org/{COUNTY_ID}")
        console.print(f"The web page, signed in (good once, for ten minutes; "
                      f"`./orglife dashboard` gives a new link): {link}", soft_wrap=True)
    except Exception as exc:  # noqa: BLE001 - the summary stands without it
        console.print(f"[yellow]the dashboard's link: {exc}[/]")
    notes = []
    if o.get("saved_token"):
        notes.append("a county admin token was saved as this home's CLI identity")
    notes.append(f"done in {o['seconds']:.0f} s; `./orglife demo` again is safe")
    console.print("[dim]" + "; ".join(notes) + ".[/]")
