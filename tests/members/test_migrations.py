"""members' migration 0006 (organizations' secretary and robot) on a database that already
holds organizations, on SQLite and PostgreSQL, up and down."""
from alembic import command
from sqlalchemy import inspect, text

from orglife.common.db import make_engine
from orglife.common.migrate import alembic_config, upgrade
from orglife.system import SYSTEM


def columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("organizations")}


def test_0006_adds_secretary_and_robot_to_stored_organizations_and_back(db_url):
    upgrade("members", db_url, revision="0005")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO organizations (org_id, name, kind, parent_id, category, "
                          "path, version, registered_at) VALUES ('c1', '青山县', 'county', NULL, "
                          "NULL, '/c1/', 1, '2026-11-01 02:00:00+00:00')"))
    upgrade("members", db_url)
    engine.dispose()
    engine = make_engine(db_url)
    assert {"secretary_id", "robot_url"} <= columns(engine)
    with engine.begin() as conn:
        row = conn.execute(text("SELECT name, version, secretary_id, robot_url "
                                "FROM organizations")).one()
        assert tuple(row) == ("青山县", 1, None, None)
        conn.execute(text("UPDATE organizations SET secretary_id = 'm1', robot_url = "
                          "'https://oapi.dingtalk.com/robot/send?access_token=x'"))
    engine.dispose()
    command.downgrade(alembic_config(SYSTEM.service("members").package, db_url), "0005")
    engine = make_engine(db_url)
    assert not {"secretary_id", "robot_url"} & columns(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM organizations")).scalar_one() == "青山县"
    engine.dispose()
