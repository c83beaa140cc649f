"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright),
against the real stack with a small county: `./orglife demo --townships 1` in a home of its
own (private RabbitMQ node, every service a process, the dashboard on a free port).

Playwright runs on greenlet: this module runs in a pytest process that does NOT monkey-patch
eventlet (KNOWN-TRAPS), started by tests/browser/test_in_chromium.py with
`--confcutdir tests/browser` so that tests/conftest.py (which patches) is not loaded:

    .venv/bin/python -m pytest -p no:cacheprovider --confcutdir tests/browser \
        --suppress-nameko-eventlet-notification -o python_files='browser_*.py' \
        tests/browser/browser_dashboard.py

Screenshots of the three pages go to .artifacts/browser/ (ignored by git), or to
ORGLIFE_ARTIFACTS.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
NOW = "2026-11-25T10:30:00+08:00"  # a Wednesday morning in the county, as tests/integration
COUNTY = "c-demo"
TOWNSHIP = "demo-t1"
OTHER_TOWNSHIP = "demo-t9"  # registered by the fixture: empty, another township admin's
ARTIFACTS = Path(os.environ.get("ORGLIFE_ARTIFACTS") or REPO / ".artifacts") / "browser"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--lang=zh-CN"]
PHONE = re.compile(r"(?<!\d)1\d{10}(?!\d)")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (./orglife test "
                                       "installs it)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Home:
    """`./orglife ...` in a home of its own (no ORGLIFE_* of the caller's)."""

    def __init__(self, home: Path):
        self.home = home
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith("ORGLIFE_")}
        self.env.update(ORGLIFE_HOME=str(home), ORGLIFE_NOW=NOW, COLUMNS="200",
                        PYTHONWARNINGS="ignore", ORGLIFE_DASHBOARD_PORT=str(free_port()))

    def __call__(self, *args, timeout=600) -> str:
        done = subprocess.run([str(REPO / "orglife"), *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (args, done.returncode, done.stdout[-4000:],
                                      done.stderr[-3000:])
        return done.stdout

    def json(self, *args):
        return json.loads(self(*args, "--json"))

    def pids(self) -> list[int]:
        pids = [int(p.read_text() or 0) for p in (self.home / "run").glob("*.pid")]
        try:
            state = json.loads((self.home / "devservers" / "endpoints.json").read_text())
            pids += [entry["pid"] for entry in state["servers"].values()]
        except (OSError, ValueError, KeyError):
            pass
        return [pid for pid in pids if pid > 0]


def stop_home(home: Home) -> None:
    """`down`, then whatever of this home is still running (only processes it started)."""
    seen = home.pids()
    subprocess.run([str(REPO / "orglife"), "down"], cwd=REPO, env=home.env,
                   capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    import psutil
    for pid in seen:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.pid == os.getpid():
                continue
            if str(home.home) in " ".join(proc.info["cmdline"] or []) or \
                    proc.environ().get("ORGLIFE_HOME") == str(home.home):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The demo county on the real stack; a second, empty township for scope checks."""
    home = Home(tmp_path_factory.mktemp("browser") / "home")
    try:
        started = time.monotonic()
        home("demo", "--townships", "1", timeout=900)
        home("org", "add", "--id", OTHER_TOWNSHIP, "--name", "远山乡党委", "--kind", "township",
             "--parent", COUNTY)
        yield {"home": home, "seconds": time.monotonic() - started}
    finally:
        stop_home(home)


@pytest.fixture(scope="module")
def browser(stack):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                              accept_downloads=True)
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def shoot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def base_url(home: Home) -> str:
    return (home.home / "run" / "dashboard.url").read_text().strip()


def column(page, table: str, index: int) -> list[str]:
    return page.locator(f'table[data-table="{table}"] tbody tr td:nth-child({index})') \
        .all_inner_texts()


def sign_in_as_cli(context, home: Home):
    """`./orglife dashboard` prints a signed-in link: open it."""
    url = home("dashboard").strip().splitlines()[-1]
    assert "/signin?ticket=" in url
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: errors.append(f"outside request {req.url}")
            if not req.url.startswith(base_url(home)) else None)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page, errors


# -- the tests ---------------------------------------------------------------------------------
def test_sign_in_overview_click_through_to_a_member_and_download(stack, context):
    home = stack["home"]
    page, errors = sign_in_as_cli(context, home)
    base = base_url(home)
    # signed in by the link; the address bar no longer holds the ticket
    assert page.url == f"{base}/org/{COUNTY}", page.url
    cookie = next(c for c in context.cookies() if c["name"].startswith("orglife_session"))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script reads the session
    assert "组织生活总览" in page.locator("h1").inner_text()

    # the lights: each branch's cell as scoring ranks it (read independently by the CLI)
    ranking = home.json("ranking", COUNTY, "--level", "branch", "--limit", "500")
    expected = {item["branch_id"]: item["light"] for item in ranking["items"]}
    cells = page.locator("#lights .cell")
    shown = {}
    for n in range(cells.count()):
        cell = cells.nth(n)
        shown[cell.get_attribute("href").split("?")[0].rsplit("/", 1)[1]] = \
            cell.get_attribute("data-light")
    assert shown == expected
    for light in ("red", "yellow", "green"):
        kpi = page.locator(f'[data-kpi="{light}"] b').inner_text()
        assert int(kpi) == sum(1 for v in expected.values() if v == light)
    assert set(expected.values()) == {"red", "yellow", "green"}  # the demo county has all three

    # categories by their Chinese names, with the figures scoring gives
    uneven = home.json("unevenness", COUNTY)
    names = {"village": "村", "community": "社区", "enterprise": "非公企业"}
    rows = page.locator('table[data-table="unevenness"] tbody tr').all_inner_texts()
    by_name = {row.split("\t")[0].strip(): row for row in rows}
    items = uneven["categories"] if "categories" in uneven else uneven["items"]
    assert set(by_name) == {names[c["category"]] for c in items}
    for c in items:
        cells_text = by_name[names[c["category"]]].split("\t")
        assert int(cells_text[1]) == c["branches"] and int(cells_text[5]) == c["below_0_6"]
    body = page.locator("main").inner_text()
    assert "village" not in body and "enterprise" not in body
    assert page.locator("#unevenness canvas, #unevenness svg").count() >= 1  # ECharts drew it
    assert page.locator('[data-level="review"]').count() == 1
    assert page.locator('table[data-table="notifications"] tbody tr').count() >= 1
    assert "系统运行状态" in body
    assert not PHONE.search(page.content())
    shoot(page, "overview")

    # click through to the bottom branch (red), then to a member with absences
    page.locator('table[data-table="bottom"] tbody tr').first.locator("a").first.click()
    page.wait_for_load_state("networkidle")
    assert "/branch/" in page.url
    branch_id = page.url.split("/branch/")[1].split("?")[0]
    assert expected[branch_id] == "red"
    compliance = home.json("compliance", branch_id)
    by_type_rows = page.locator('table[data-table="by_type"] tfoot td').all_inner_texts()
    assert int(by_type_rows[2]) == compliance["required"]
    assert int(by_type_rows[3]) == compliance["met"]
    assert page.locator('table[data-table="meetings"] tbody tr').count() >= 1
    assert not PHONE.search(page.content())
    assert any("****" in t for t in column(page, "members", 7)) or \
        all(t in ("", "—") for t in column(page, "members", 7))
    shoot(page, "branch")

    # the year and as-of selector: the same branch as of June answers for June
    page.goto(f"{base}/branch/{branch_id}?year=2026&as_of=2026-06-30")
    page.wait_for_load_state("networkidle")
    assert page.locator('input[name="as_of"]').input_value() == "2026-06-30"
    june = home.json("compliance", branch_id, "--as-of", "2026-06-30")
    assert int(page.locator('table[data-table="by_type"] tfoot td').all_inner_texts()[2]) \
        == june["required"]
    page.go_back()
    page.wait_for_load_state("networkidle")

    # a member: the breakdown sums to the score
    page.locator('table[data-table="members"] tbody tr').first.locator("a").first.click()
    page.wait_for_load_state("networkidle")
    assert "/member/" in page.url
    member_id = page.url.split("/member/")[1].split("?")[0]
    score = float(page.locator("[data-score]").first.get_attribute("data-score"))
    points = [float(t) for t in column(page, "breakdown", 6) if t.strip()]
    assert points and abs(sum(points) - float(page.locator("[data-raw]").get_attribute(
        "data-raw"))) < 1e-6
    cli_score = home.json("score", member_id)
    assert score == cli_score["score"]
    if not cli_score.get("clamped"):
        assert abs(sum(points) - score) < 1e-6
    assert len(points) == len(cli_score["breakdown"])
    phone = page.locator("[data-phone]").inner_text()
    assert phone == "—" or re.fullmatch(r"1\d\d\*\*\*\*\d{4}", phone), phone
    shoot(page, "member")

    # download the breakdown as .xlsx and read it back
    with page.expect_download() as download_info:
        page.locator('a[data-download="breakdown"]').click()
    download = download_info.value
    path = ARTIFACTS / "breakdown.xlsx"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    download.save_as(str(path))
    from openpyxl import load_workbook
    sheet = load_workbook(io.BytesIO(path.read_bytes())).worksheets[0]
    headers = [c.value for c in sheet[1]]
    assert headers[:6] == ["日期", "事项", "类型", "支部", "主题", "积分"], headers
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [r[5] for r in rows[:len(points)]] == pytest.approx(points)
    assert rows[-1][0] == "合计" and rows[-1][5] == pytest.approx(sum(points))
    assert download.suggested_filename.endswith(".xlsx")
    assert not errors, errors  # no script error, nothing fetched from elsewhere


def test_a_township_admin_sees_its_township_and_is_refused_another(stack, browser):
    home = stack["home"]
    base = base_url(home)
    token = home("token", "--role", "township_admin", "--org", OTHER_TOWNSHIP, "--sub",
                 "li", "--no-save").strip()
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    try:
        page = ctx.new_page()
        page.goto(f"{base}/org/{TOWNSHIP}")
        assert "/signin" in page.url  # not signed in: the form, keeping where to go
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        # the pasted token is good, but demo-t1 is not its township: 403, none of its data
        response = page.goto(f"{base}/org/{TOWNSHIP}")
        assert response.status == 403
        main = page.locator("main").inner_text()
        assert "无权查看" in main and "石桥" not in main
        assert page.goto(f"{base}/branch/demo-b035").status == 403
        assert page.goto(f"{base}/org/{TOWNSHIP}/export/branches.xlsx").status == 403
        assert page.goto(f"{base}/org/{COUNTY}").status == 403
        shoot(page, "refused")
        # its own township answers, and the start page takes it there
        page.goto(f"{base}/")
        page.wait_for_load_state("networkidle")
        assert page.url == f"{base}/org/{OTHER_TOWNSHIP}"
        assert "远山乡党委" in page.locator("h1").inner_text()

        # signing out: the cookie is gone and pages ask to sign in again
        page.click("#signout")
        page.wait_for_load_state("networkidle")
        assert "/signin" in page.url and "已退出登录" in page.locator("main").inner_text()
        assert not [c for c in ctx.cookies() if c["name"].startswith("orglife_session")]
        page.goto(f"{base}/org/{OTHER_TOWNSHIP}")
        assert "/signin" in page.url
    finally:
        ctx.close()


def test_a_bad_token_is_refused_at_the_form(stack, browser):
    base = base_url(stack["home"])
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(f"{base}/signin")
        page.fill("#token", "not-a-token")
        page.click("button[type=submit]")
        assert "令牌无效" in page.locator("[role=alert]").inner_text()
        assert not ctx.cookies()
    finally:
        ctx.close()


def test_everything_is_served_by_the_dashboard(stack, context):
    """No CDN: the scripts and styles the pages use come from the service itself."""
    home = stack["home"]
    page, _ = sign_in_as_cli(context, home)
    base = base_url(home)
    sources = page.evaluate("[...document.querySelectorAll('script[src], link[href]')]"
                            ".map(e => e.src || e.href)")
    assert sources and all(s.startswith(base) for s in sources), sources
    assert shutil.which("chromium") or Path(CHROMIUM).exists()


def test_this_process_is_not_monkey_patched():
    """Playwright's greenlets and eventlet's hub do not mix (KNOWN-TRAPS)."""
    from eventlet import patcher
    assert not patcher.is_monkey_patched("socket")
    assert not patcher.is_monkey_patched("thread")
