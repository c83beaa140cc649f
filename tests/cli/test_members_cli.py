"""`orglife org|member|token` end to end: the CLI as a subprocess against a MembersService
container on the real broker (a fresh vhost), as an office would use it."""
import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from orglife.common.auth import mint_token
from tests.conftest import REPO, SECRET, bearer, migrated_sqlite, service_config
from tests.members.conftest import small_county

pytestmark = pytest.mark.integration


@pytest.fixture
def members_service(container_factory, vhost_uri, tmp_path):
    """A MembersService container on the test vhost, the small county registered through RPC."""
    from nameko.standalone.rpc import ClusterRpcProxy
    from services.members.service import MembersService
    db_url = migrated_sqlite(tmp_path, "members")
    container = container_factory(MembersService,
                                  service_config("members", vhost_uri, db_url, tmp_path))
    container.start()
    with ClusterRpcProxy({"AMQP_URI": vhost_uri}, context_data={"authorization": bearer()},
                         timeout=30) as cluster:
        small_county(cluster.members)
    return container


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def orglife(vhost_uri, home, members_service):
    """Run `python -m orglife ...`; `token=` sets ORGLIFE_TOKEN (None: the saved token, if any)."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("ORGLIFE_")}
    base.update(ORGLIFE_AMQP_URI=vhost_uri, ORGLIFE_HOME=str(home), ORGLIFE_SECRET=SECRET,
                COLUMNS="250", PYTHONWARNINGS="ignore")

    def run(*args, expect=0, token=None):
        env = dict(base, **({"ORGLIFE_TOKEN": token} if token else {}))
        done = subprocess.run([sys.executable, "-m", "orglife", *map(str, args)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
        return done

    def run_json(*args, token=None):
        return json.loads(run(*args, "--json", token=token).stdout)

    run.json = run_json
    return run


COUNTY_ADMIN = mint_token(SECRET, "office", "county_admin")


def table_rows(text):
    """The cells of each row of a Rich table in `text`, stripped."""
    return [[cell.strip() for cell in line.strip().strip("│").split("│")]
            for line in text.splitlines() if line.strip().startswith("│")]


# -- import --------------------------------------------------------------------------------------
HEADERS = ["姓名", "所在支部", "党小组", "党员类型", "手机号", "入党时间", "是否流动党员", "流动地点",
           "备注"]
SHEET_ROWS = [  # spreadsheet lines 3.. (line 1 is a title, line 2 the headers)
    ["张伟", "石桥村党支部", "第一党小组", "正式党员", 13800138000, dt.date(2001, 7, 1), "否", None, None],
    ["李娜", "白沙社区党支部", None, "预备党员", 13900139000, dt.date(2025, 12, 1), "是", "广东省深圳市",
     "在外务工"],
    ["王芳", "宏达公司党支部", None, "正式党员", 12345, dt.date(2010, 3, 15), "否", None, None],
    ["刘洋", "不存在的支部", None, "正式党员", 13700137000, dt.date(2012, 5, 4), "否", None, None],
    [None, None, None, None, None, None, None, None, None],  # an empty line is skipped
    ["陈静", "石桥村党支部", None, "正式党员", 13600136000, dt.date(2030, 7, 1), "否", None, None],
    [None, "石桥村党支部", None, "正式党员", 13500135000, dt.date(2015, 6, 30), "否", None, "漏填姓名"],
    ["赵磊", "宏达公司党支部", None, "正式党员", 13300133000, dt.date(1998, 10, 1), "否", None, None],
    ["杨光", "石桥村党支部", "第一党小组", "预备党员", 13200132000, dt.date(2026, 5, 20), None, None, None],
]
BAD_LINES = {(5, "phone"), (6, "branch"), (8, "joined_on"), (9, "name")}


def write_roster(path):
    """A 花名册 as offices keep it: title line, Chinese headers, numeric phones, date cells."""
    import openpyxl
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "党员花名册"
    sheet.append(["石桥镇党员花名册（2026年11月）"])
    sheet.append(HEADERS)
    for row in SHEET_ROWS:
        sheet.append(row)
    for (cell,) in sheet.iter_rows(min_row=3, min_col=6, max_col=6):
        cell.number_format = "yyyy-mm-dd"
    workbook.save(path)
    return path


def test_import_xlsx_with_chinese_headers_reports_bad_rows_by_line(orglife, home, tmp_path):
    # The CLI's identity from `orglife token`, kept in ORGLIFE_HOME/token (no ORGLIFE_TOKEN).
    token = orglife("token", "--role", "county_admin").stdout.strip()
    assert (home / "token").read_text().strip() == token
    assert (home / "token").stat().st_mode & 0o077 == 0

    path = write_roster(tmp_path / "花名册.xlsx")
    done = orglife("member", "import", path, expect=1)
    assert "created 4, updated 0, unchanged 0, rejected rows 4" in done.stdout
    assert "ignored columns: 备注" in done.stderr
    assert "rows not imported" in done.stdout
    errors = {(int(r[0]), r[1]): r[2] for r in table_rows(done.stdout) if r and r[0].isdigit()}
    assert set(errors) == BAD_LINES, done.stdout
    assert "mobile number" in errors[(5, "phone")]
    assert "不存在的支部" in errors[(6, "branch")]
    assert "future" in errors[(8, "joined_on")]

    page = orglife.json("member", "list")
    assert page["total"] == 4
    by_name = {m["name"]: m for m in page["items"]}
    assert set(by_name) == {"张伟", "李娜", "赵磊", "杨光"}
    zhang = by_name["张伟"]
    assert zhang["phone"] == "13800138000"  # a numeric cell, not 13800138000.0
    assert zhang["joined_on"] == "2001-07-01"  # a date cell
    assert zhang["branch_id"] == "b1" and zhang["group_id"] == "g1"  # resolved from names
    assert zhang["status"] == "formal" and zhang["mobile"] is False
    li = by_name["李娜"]
    assert li["branch_id"] == "b2" and li["status"] == "probationary"
    assert li["mobile"] is True and li["mobile_location"] == "广东省深圳市"

    again = orglife("member", "import", path, expect=1)
    assert "created 0, updated 0, unchanged 4, rejected rows 4" in again.stdout
    assert orglife.json("member", "list")["total"] == 4
    # scripts get the same answer as JSON, and the same exit code
    report = json.loads(orglife("member", "import", path, "--json", expect=1).stdout)
    assert {(e["row"], e["field"]) for e in report["errors"]} == BAD_LINES
    assert len(report["unchanged"]) == 4


def test_import_csv_and_json_output(orglife, tmp_path):
    path = tmp_path / "members.csv"
    path.write_text("\ufeff党员编号,姓名,所在支部,党员类型,手机号,入党时间,是否流动党员,流动地点\n"
                    "c-001,周杰,白沙社区党支部,正式党员,139 0013 9001,2003/07/01,是,浙江省杭州市\n"
                    "c-002,吴芳,b3,预备,,2025年10月,否,\n", encoding="utf-8")
    result = orglife.json("member", "import", path, token=COUNTY_ADMIN)
    assert sorted(result["created"]) == ["c-001", "c-002"] and result["errors"] == []
    zhou = orglife.json("member", "show", "c-001", token=COUNTY_ADMIN)
    assert zhou["phone"] == "13900139001" and zhou["joined_on"] == "2003-07-01"
    assert zhou["branch_id"] == "b2" and zhou["mobile_location"] == "浙江省杭州市"
    wu = orglife.json("member", "show", "c-002", token=COUNTY_ADMIN)
    assert wu["status"] == "probationary" and wu["joined_on"] == "2025-10-01"
    done = orglife("member", "import", path, token=COUNTY_ADMIN)  # nothing rejected: exit 0
    assert "created 0, updated 0, unchanged 2, rejected rows 0" in done.stdout
    # a file orglife cannot read at all: a usage error, nothing sent
    (tmp_path / "members.txt").write_text("姓名\n张三\n")
    orglife("member", "import", tmp_path / "members.txt", token=COUNTY_ADMIN, expect=2)
    (tmp_path / "headless.csv").write_text("姓名,电话\n张三,13800138000\n", encoding="utf-8")
    done = orglife("member", "import", tmp_path / "headless.csv", token=COUNTY_ADMIN, expect=2)
    assert "所在支部" in done.stderr


# -- organizations and members --------------------------------------------------------------------
def test_org_add_list_show(orglife):
    done = orglife("org", "add", "--id", "t3", "--name", "河口镇", "--kind", "township",
                   "--parent", "c1", token=COUNTY_ADMIN)
    assert "t3" in done.stdout and "河口镇" in done.stdout and "township" in done.stdout
    branch = orglife.json("org", "add", "--id", "b4", "--name", "河口村党支部", "--kind", "branch",
                          "--parent", "t3", "--category", "village", token=COUNTY_ADMIN)
    assert branch["path"] == ["c1", "t3", "b4"] and branch["category"] == "village"
    page = orglife.json("org", "list", "--kind", "township", token=COUNTY_ADMIN)
    assert page["total"] == 3 and {o["org_id"] for o in page["items"]} == {"t1", "t2", "t3"}
    out = orglife("org", "list", "--under", "t3", token=COUNTY_ADMIN).stdout
    assert "organizations (2 of 2)" in out and "河口村党支部" in out and "石桥镇" not in out
    shown = orglife.json("org", "show", "t1", token=COUNTY_ADMIN)
    assert shown["name"] == "石桥镇" and shown["children"] == 2 and shown["members"] == 0
    out = orglife("org", "show", "b4", token=COUNTY_ADMIN).stdout
    assert "河口村党支部" in out and "village 村" in out and "branch 党支部" in out
    # refusals name the field, or the missing record
    done = orglife("org", "add", "--name", "无上级支部", "--kind", "branch", token=COUNTY_ADMIN,
                   expect=1)
    assert "parent_id" in done.stderr
    done = orglife("org", "show", "nope", token=COUNTY_ADMIN, expect=1)
    assert "NotFound" in done.stderr


def test_member_add_show_update_transfer(orglife):
    done = orglife("member", "add", "--id", "m100", "--name", "孙丽", "--branch", "b1",
                   "--group", "g1", "--phone", "13700137001", "--joined-on", "2010-07-01",
                   "--committee", token=COUNTY_ADMIN)
    assert all(text in done.stdout for text in ("m100", "孙丽", "b1", "g1", "13700137001",
                                                "2010-07-01"))
    member = orglife.json("member", "show", "m100", token=COUNTY_ADMIN)
    assert member["committee_member"] is True and member["version"] == 1
    assert member["participation"]["items"] == []
    out = orglife("member", "show", "m100", token=COUNTY_ADMIN).stdout
    assert "孙丽" in out and "participation (0)" in out

    updated = orglife.json("member", "update", "m100", "--phone", "13700137002", "--mobile",
                           "--mobile-location", "江苏省苏州市", token=COUNTY_ADMIN)
    assert updated["phone"] == "13700137002" and updated["mobile"] is True
    assert updated["version"] == 2
    out = orglife("member", "update", "m100", "--not-committee", token=COUNTY_ADMIN).stdout
    assert "江苏省苏州市" in out and "13700137002" in out

    moved = orglife("member", "transfer", "m100", "--to", "b2", token=COUNTY_ADMIN).stdout
    assert "b2" in moved
    member = orglife.json("member", "show", "m100", token=COUNTY_ADMIN)
    assert member["branch_id"] == "b2" and member["group_id"] is None and member["version"] == 4
    assert [m["member_id"] for m in orglife.json("member", "list", "--branch", "b2",
                                                 token=COUNTY_ADMIN)["items"]] == ["m100"]
    out = orglife.json("member", "transfer", "m100", "--out", token=COUNTY_ADMIN)
    assert out["status"] == "transferred_out"

    # bad values come back field by field (exit 1); bad usage is exit 2 and sends nothing
    done = orglife("member", "add", "--name", "错号", "--branch", "b1", "--phone", "123",
                   token=COUNTY_ADMIN, expect=1)
    assert "phone" in done.stderr and "rejected" in done.stderr
    orglife("member", "transfer", "m100", "--to", "b1", "--out", token=COUNTY_ADMIN, expect=2)
    orglife("member", "transfer", "m100", token=COUNTY_ADMIN, expect=2)


# -- who may call ---------------------------------------------------------------------------------
def test_without_a_token_the_cli_says_how_to_get_one(orglife, home):
    assert not (home / "token").exists()
    done = orglife("member", "list", expect=2)
    assert "no token" in done.stderr and "orglife token --role county_admin" in done.stderr
    assert "ORGLIFE_TOKEN" in done.stderr
    forged = mint_token("another-secret-0123456789-0123456789", "x", "county_admin")
    done = orglife("member", "list", token=forged, expect=1)
    assert "Unauthorized" in done.stderr
    done = orglife("token", "--role", "township_admin", expect=2)  # a scoped role needs --org
    assert "--org" in done.stderr
    assert not (home / "token").exists()


def test_a_township_admin_is_kept_to_its_township(orglife):
    orglife("member", "add", "--id", "m1", "--name", "张伟", "--branch", "b1", token=COUNTY_ADMIN)
    orglife("member", "add", "--id", "n1", "--name", "赵敏", "--branch", "b2", token=COUNTY_ADMIN)
    township = mint_token(SECRET, "baisha", "township_admin", "t2")
    done = orglife("member", "show", "m1", token=township, expect=1)
    assert "Forbidden" in done.stderr and "m1" in done.stderr
    done = orglife("org", "add", "--name", "石桥二村党支部", "--kind", "branch", "--parent", "t1",
                   "--category", "village", token=township, expect=1)
    assert "Forbidden" in done.stderr
    done = orglife("member", "transfer", "m1", "--to", "b2", token=township, expect=1)
    assert "Forbidden" in done.stderr  # pulling a member in from another township
    # inside its township it works, and lists show only what it may see
    assert orglife.json("member", "show", "n1", token=township)["branch_id"] == "b2"
    assert [m["member_id"] for m in orglife.json("member", "list", token=township)["items"]] == ["n1"]
    assert {o["org_id"] for o in orglife.json("org", "list", token=township)["items"]} == {"t2", "b2"}
