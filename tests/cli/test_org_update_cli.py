"""`orglife org update` and `org show` (issue 9): an organization's name, category, secretary
and robot, the CLI as a subprocess against a MembersService container on the real broker."""
import pytest

from orglife.common.auth import mint_token
from tests.cli.test_members_cli import (  # noqa: F401  (fixtures)
    COUNTY_ADMIN, home, members_service, orglife, table_rows,
)
from tests.conftest import SECRET

pytestmark = pytest.mark.integration

ROBOT = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef"


def record(text):
    """A `show_record` table as {field: value}."""
    return {row[0]: row[1] for row in table_rows(text) if len(row) == 2}


def test_org_update_and_show_the_secretary_and_robot(orglife):
    orglife("member", "add", "--id", "m1", "--name", "张伟", "--branch", "b1", token=COUNTY_ADMIN)
    orglife("member", "add", "--id", "n1", "--name", "赵敏", "--branch", "b2", token=COUNTY_ADMIN)

    renamed = orglife.json("org", "update", "b1", "--name", "石桥社区党支部", "--category",
                           "community", token=COUNTY_ADMIN)
    assert renamed["name"] == "石桥社区党支部" and renamed["category"] == "community"
    assert renamed["version"] == 2 and renamed["kind"] == "branch"

    done = orglife("org", "update", "b1", "--secretary", "m1", "--robot", ROBOT,
                   token=COUNTY_ADMIN)
    shown = record(done.stdout)
    assert shown["secretary_id"] == "m1 张伟" and shown["robot_url"] == ROBOT
    assert shown["category"] == "community 社区" and shown["version"] == "3"

    shown = record(orglife("org", "show", "b1", token=COUNTY_ADMIN).stdout)
    assert shown["secretary_id"] == "m1 张伟" and shown["robot_url"] == ROBOT
    assert shown["kind"] == "branch 党支部" and shown["name"] == "石桥社区党支部"
    org = orglife.json("org", "show", "b1", token=COUNTY_ADMIN)
    assert org["secretary_id"] == "m1" and org["robot_url"] == ROBOT  # ids as stored

    # the same again changes nothing: no new version
    again = orglife.json("org", "update", "b1", "--secretary", "m1", token=COUNTY_ADMIN)
    assert again["version"] == 3
    cleared = orglife.json("org", "update", "b1", "--clear-secretary", "--clear-robot",
                           token=COUNTY_ADMIN)
    assert cleared["secretary_id"] is None and cleared["robot_url"] is None
    assert cleared["version"] == 4
    # a township's alert officer: any active member of a branch under it
    assert orglife.json("org", "update", "t2", "--secretary", "n1",
                        token=COUNTY_ADMIN)["secretary_id"] == "n1"


def test_org_update_refusals(orglife):
    orglife("member", "add", "--id", "n1", "--name", "赵敏", "--branch", "b2", token=COUNTY_ADMIN)
    # bad values come back field by field (exit 1)
    done = orglife("org", "update", "b1", "--robot", "robot.example.cn", token=COUNTY_ADMIN,
                   expect=1)
    assert "rejected" in done.stderr
    assert {row[0] for row in table_rows(done.stderr) if row} == {"robot_url"}
    done = orglife("org", "update", "b1", "--secretary", "n1", token=COUNTY_ADMIN, expect=1)
    assert {row[0] for row in table_rows(done.stderr) if row} == {"secretary_id"}
    done = orglife("org", "update", "t1", "--category", "village", token=COUNTY_ADMIN, expect=1)
    assert "category" in done.stderr
    done = orglife("org", "update", "nope", "--name", "x", token=COUNTY_ADMIN, expect=1)
    assert "NotFound" in done.stderr
    # bad usage is exit 2 and sends nothing
    orglife("org", "update", "b1", token=COUNTY_ADMIN, expect=2)
    orglife("org", "update", "b1", "--secretary", "n1", "--clear-secretary",
            token=COUNTY_ADMIN, expect=2)
    orglife("org", "update", "b1", "--robot", ROBOT, "--clear-robot", token=COUNTY_ADMIN,
            expect=2)
    orglife("org", "update", "b1", "--kind", "township", token=COUNTY_ADMIN, expect=2)
    assert orglife.json("org", "show", "b1", token=COUNTY_ADMIN)["version"] == 1

    # a branch secretary sets its own branch's secretary and robot, not its name
    secretary = mint_token(SECRET, "b2-secretary", "branch_secretary", "b2")
    done = orglife.json("org", "update", "b2", "--secretary", "n1", "--robot", ROBOT,
                        token=secretary)
    assert done["secretary_id"] == "n1" and done["robot_url"] == ROBOT
    done = orglife("org", "update", "b2", "--name", "别的名字", token=secretary, expect=1)
    assert "Forbidden" in done.stderr and "admin" in done.stderr
    done = orglife("org", "update", "b1", "--robot", ROBOT, token=secretary, expect=1)
    assert "Forbidden" in done.stderr
    # a township admin: its own township's subtree only
    township = mint_token(SECRET, "shiqiao", "township_admin", "t1")
    assert orglife.json("org", "update", "b3", "--category", "school",
                        token=township)["category"] == "school"
    done = orglife("org", "update", "b2", "--robot", ROBOT, token=township, expect=1)
    assert "Forbidden" in done.stderr
    # a secretary since transferred out of the township: shown by id alone to its admin,
    # who may not look the member up any more
    orglife("member", "add", "--id", "m1", "--name", "张伟", "--branch", "b1", token=COUNTY_ADMIN)
    orglife("org", "update", "b1", "--secretary", "m1", token=COUNTY_ADMIN)
    orglife("member", "transfer", "m1", "--to", "b2", token=COUNTY_ADMIN)
    assert record(orglife("org", "show", "b1", token=township).stdout)["secretary_id"] == "m1"
    assert record(orglife("org", "show", "b1",
                          token=COUNTY_ADMIN).stdout)["secretary_id"] == "m1 张伟"
