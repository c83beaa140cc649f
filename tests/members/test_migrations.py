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


def test_0007_drops_the_held_at_index_and_a_members_lines_still_come_in_order(db_url):
    """participation loses ix_participation_member_held (0007); participation_record finds
    a member's lines by the primary key and gives them in held_at order; down and up again."""
    from orglife.common.db import session_factory
    from services.members.registry import participation_record
    upgrade("members", db_url, revision="0006")
    engine = make_engine(db_url)

    def indexes():
        return {ix["name"] for ix in inspect(engine).get_indexes("participation")}
    try:
        assert "ix_participation_member_held" in indexes()
        with engine.begin() as conn:
            for ref, held_at in (("mt-b", "2026-03-02 02:00:00+00:00"),
                                 ("mt-a", "2026-05-01 02:00:00+00:00"),
                                 ("mt-c", "2026-01-09 02:00:00+00:00")):
                conn.execute(text(
                    "INSERT INTO participation (member_id, kind, ref, type, branch_id, held_at, "
                    "year, status, remote, visiting, topic) VALUES ('m1', 'meeting', :r, "
                    "'party_lecture', 'b1', :h, 2026, 'present', false, false, NULL)"),
                    {"r": ref, "h": held_at})
        upgrade("members", db_url)
        assert "ix_participation_member_held" not in indexes()
        with session_factory(engine)() as session:
            record = participation_record(session, "m1")
        assert [item["ref"] for item in record["items"]] == ["mt-c", "mt-b", "mt-a"]
        command.downgrade(alembic_config(SYSTEM.service("members").package, db_url), "0006")
        assert "ix_participation_member_held" in indexes()
    finally:
        engine.dispose()
