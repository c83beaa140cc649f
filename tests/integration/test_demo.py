"""`./orglife demo` as a newcomer runs it: from the bootstrap script, in a home of its own with
its own private RabbitMQ node and local endpoints, twice (the second run creates nothing),
then `status` and `down` (nothing of it left running). Plus the demo county's shape, without
a broker.

The demo runs once per module (it is the slow part): with one township (the source report's
38 organizations) and a fixed clock, so that the county's year, and what it prints, is the same
whatever the day the suite runs on.
"""
import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from orglife.democounty import (
    COUNTY_ID, DRIFT_STARTS, SILENT_AFTER, SOURCE_CADRES, SOURCE_HOUSEHOLDS, make_demo_county,
)
from orglife.devservers import read_maildir, read_records
from orglife.system import SYSTEM
from tests.conftest import REPO

NOW = "2026-11-25T10:30:00+08:00"  # a Wednesday morning in the county
SECTIONS = ("Compliance by branch category", "Lights", "Top 5 branches", "Bottom 5 branches",
            "Members at risk", "Points and grades", "Notifications by kind and channel",
            "one message:", "What arrived at the local endpoints", "Explore further")


# -- the demo county, no broker ------------------------------------------------------------------
def test_the_demo_county_is_shaped_like_the_source_and_deterministic():
    county = make_demo_county(2026, townships=2)
    assert county == make_demo_county(2026, townships=2)  # same seed, same county, same year
    assert [o["org_id"] for o in county.organizations if o["kind"] == "county"] == [COUNTY_ID]
    source = [b for b in county.branches if b["parent_id"] == county.source_township]
    assert len(source) == 38
    assert set(Counter(b["category"] for b in source)) == {"village", "community", "enterprise"}
    ids = [o["org_id"] for o in county.organizations] + [m["member_id"] for m in county.members]
    assert len(ids) == len(set(ids)) and all(len(i) <= 64 for i in ids)
    known = set()
    for org in county.organizations:  # parents first
        assert org["parent_id"] is None or org["parent_id"] in known, org
        known.add(org["org_id"])

    visits = [a for a in county.activities if a["kind"] == "household_visit"]
    assert len(county.cadres) == SOURCE_CADRES and len(visits) == SOURCE_HOUSEHOLDS
    assert {a["member_id"] for a in visits} == set(county.cadres)
    assert len({a["household"] for a in visits}) > 1000

    members = {m["member_id"]: m for m in county.members}
    assert any(m["mobile"] and m["mobile_location"] for m in county.members)
    assert any(not m["phone"] and not m["email"] for m in county.members)
    assert all(members[s]["email"] for s in county.secretaries.values())
    assert set(county.secretaries) >= {b["org_id"] for b in county.branches} | set(county.townships)
    assert sorted(set(county.drifting.values())) == sorted(DRIFT_STARTS)

    silent_end = dt.datetime(2026, *SILENT_AFTER, 23, 59)
    remote = 0
    for meeting in county.meetings:
        held = dt.datetime.fromisoformat(meeting["held_at"])
        if meeting["branch_id"] == county.silent_branch:
            assert held <= silent_end
        for row in meeting["attendance"]:
            member = members[row["member_id"]]
            assert dt.date.fromisoformat(member["joined_on"]) <= held.date()
            remote += row["remote"]
            start = county.drifting.get(row["member_id"])
            if start is not None and held.month >= start:
                assert row["status"] == "absent"
    assert remote > 0
    held, _ = county.held_by(dt.datetime(2026, 11, 25, 10, 30))
    assert 0 < len(held) < len(county.meetings)


def test_a_home_keeps_the_demo_county_it_loaded(tmp_path):
    from orglife.common.config import Settings
    from orglife.demo import DEFAULT_TOWNSHIPS, DemoError, choose_county, county_file
    settings = Settings(home=tmp_path, now=NOW)
    assert choose_county(settings, None) == (2026, DEFAULT_TOWNSHIPS)
    assert choose_county(settings, 2) == (2026, 2)
    county_file(settings).parent.mkdir(parents=True)
    county_file(settings).write_text(json.dumps({"year": 2026, "townships": 2}))
    assert choose_county(settings, None) == (2026, 2) == choose_county(settings, 2)
    with pytest.raises(DemoError, match="--fresh"):  # its ids would name other records
        choose_county(settings, 3)
    with pytest.raises(DemoError, match="of 2026 with 2 townships"):  # a new year
        choose_county(Settings(home=tmp_path, now="2027-01-04T10:00:00+08:00"), None)


# -- the demo for real ------------------------------------------------------------------------------
class Home:
    """`./orglife ...` with ORGLIFE_HOME (and nothing else of ORGLIFE_*) from the environment."""

    def __init__(self, home: Path):
        self.home = home
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith("ORGLIFE_")}
        self.env.update(ORGLIFE_HOME=str(home), ORGLIFE_NOW=NOW, COLUMNS="200",
                        PYTHONWARNINGS="ignore")

    def __call__(self, *args, expect=0, timeout=300):
        done = subprocess.run([str(REPO / "orglife"), *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == expect, (args, done.returncode, done.stdout[-5000:],
                                           done.stderr[-3000:])
        return done

    def endpoint_pids(self) -> list[int]:
        try:
            state = json.loads((self.home / "devservers" / "endpoints.json").read_text())
        except OSError:
            return []
        return [entry["pid"] for entry in state["servers"].values()]

    def service_pids(self) -> dict[str, int]:
        return {p.stem: int(p.read_text() or 0) for p in (self.home / "run").glob("*.pid")}

    def pids(self) -> list[int]:
        return list(self.service_pids().values()) + self.endpoint_pids()

    def mails(self):
        return read_maildir(self.home / "devservers" / "smtp" / "maildir")

    def records(self, name):
        return read_records(self.home / "devservers" / "http" / f"{name}.jsonl")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def home_processes(home: Path) -> list[psutil.Process]:
    """Every process whose command line or environment names this home."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(home) in " ".join(proc.info["cmdline"] or []) or \
                    proc.environ().get("ORGLIFE_HOME") == str(home) or \
                    str(home) in proc.environ().get("RABBITMQ_MNESIA_BASE", ""):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo run twice in a fresh home; everything it started stopped afterwards."""
    from orglife.broker import ensure_rabbitmq_installed
    ensure_rabbitmq_installed()
    home = Home(tmp_path_factory.mktemp("demo") / "home")
    seen: set[int] = set()
    try:
        started = time.monotonic()
        first = home("demo", "--townships", "1")
        first_seconds = time.monotonic() - started
        seen |= set(home.pids())
        counts = {"mails": len(home.mails()), "sms": len(home.records("sms")),
                  "robot": len(home.records("robot"))}
        started = time.monotonic()
        second = home("demo", "--townships", "1")
        second_seconds = time.monotonic() - started
        seen |= set(home.pids())
        yield {"home": home, "first": first.stdout, "second": second.stdout, "counts": counts,
               "seconds": (first_seconds, second_seconds), "seen": seen}
    finally:
        subprocess.run([str(REPO / "orglife"), "down"], cwd=REPO, env=home.env,
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        from orglife.broker import PrivateBroker
        PrivateBroker(home.home).stop()  # no-op when `down` did it
        for pid in seen | set(home.pids()):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        for proc in home_processes(home.home):
            proc.kill()


@pytest.mark.integration
def test_the_demo_prints_what_a_county_admin_looks_at(demo):
    out = " ".join(demo["first"].split())  # as read, whatever the terminal wrapped
    for section in SECTIONS:
        assert section in out, (section, out)
    assert "38 organizations" in out and "365 cadres visited 1795 contact households" in out
    assert "非公企业" in out and "社区" in out and "村" in out  # compliance by category
    assert "silent:" in out and "review 提请审议" in out
    assert "./orglife down" in out and "devservers received" in out
    assert "without the 10-minute grace" in out  # it says it uses its own rules copy
    assert "no quiet hours" in out
    assert "parked messages: 0" in out
    assert re.search(r"The web page, signed in .*: http://127\.0\.0\.1:\d+/signin\?ticket=",
                     demo["first"]), out
    assert not re.search(r"(?<!\d)1\d{10}(?!\d)", out)  # no phone number is shown
    assert not re.search(r"[A-Za-z0-9]{2}@example\.", out)  # nor an e-mail address


@pytest.mark.integration
def test_the_notifications_went_out_to_the_local_endpoints(demo):
    home, counts = demo["home"], demo["counts"]
    mails = home.mails()
    assert counts["mails"] == len(mails) > 10
    subjects = Counter(mail.subject.split("】")[0] + "】" for mail in mails)
    assert subjects["【缺席跟进】"] and subjects["【缺席汇总】"], subjects
    assert all(mail.to.rsplit(".", 1)[0].endswith("@example") for mail in mails)
    sms = home.records("sms")
    assert sms and all(set(r["body"]) == {"phone", "text"} for r in sms)
    robot = home.records("robot")  # the silent branch, on its township's own robot
    assert robot and all(r["path"].startswith("/robot/demo-t1?access_token=") for r in robot)
    assert f"What arrived at the local endpoints: {len(mails)} e-mails, {len(sms)} SMS" \
        in " ".join(demo["first"].split())


@pytest.mark.integration
def test_running_it_again_changes_nothing(demo):
    home, counts, second = demo["home"], demo["counts"], demo["second"]
    assert "This run added 0 meetings and 0 notifications" in " ".join(second.split()), second
    assert {"mails": len(home.mails()), "sms": len(home.records("sms")),
            "robot": len(home.records("robot"))} == counts
    for section in SECTIONS:
        assert section in second
    # the same overview: the tables are those of the first run
    first_tables = demo["first"].split("Compliance by branch category", 1)[1]
    second_tables = second.split("Compliance by branch category", 1)[1]
    assert first_tables.split("Notifications by kind")[0] == \
        second_tables.split("Notifications by kind")[0]


@pytest.mark.integration
def test_status_shows_the_endpoints_and_down_stops_everything(demo):
    home = demo["home"]
    report = json.loads(home("status", "--json").stdout)
    assert {row["endpoint"] for row in report["endpoints"]} == {"smtp", "sms", "robot"}
    assert all(row["up"] for row in report["endpoints"])
    assert all(row["answers"] for row in report["services"])
    assert set(home.service_pids()) == {f"{name}-1" for name in SYSTEM.names}
    assert len(home.endpoint_pids()) == 3
    pids = home.pids()
    done = home("down")
    assert "stopped the local endpoints" in done.stdout
    assert "stopping the private RabbitMQ node" in done.stdout
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in set(pids) | demo["seen"])
    assert home_processes(home.home) == []
