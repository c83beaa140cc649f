"""scoring's migrations on a database that already holds rows, on SQLite and PostgreSQL."""
from alembic import command
from sqlalchemy import text

from orglife.common.db import make_engine, session_factory
from orglife.common.migrate import alembic_config, upgrade
from services.scoring.models import MemberTally
from services.scoring.tallies import add_counts

TALLY = ("m1", 2026, "meeting:branch_assembly", "present", 4)
MONTH = ("m1", "2026-03", 2, 1, 1)


def _rows(engine) -> tuple[list, list]:
    with engine.connect() as conn:
        return (conn.execute(text("SELECT * FROM member_tally")).all(),
                conn.execute(text("SELECT member_id, month, expected, attended, leave "
                                  "FROM member_month")).all())


def _table_sql(engine, name: str) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"),
                            {"n": name}).scalar()


def test_0005_keeps_the_tallies_and_months_and_drops_their_rowid_on_sqlite(db_url):
    """0005 rebuilds member_tally and member_month WITHOUT ROWID on SQLite
    (bench/tally_tables.py), every row and the primary keys kept; the consumer's upsert works on the new tables; the
    downgrade gives the rowid tables back, rows kept. PostgreSQL: nothing changes."""
    upgrade("scoring", db_url, revision="0004")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO member_tally VALUES (:a, :b, :c, :d, :e)"),
                         dict(zip("abcde", TALLY)))
            conn.execute(text("INSERT INTO member_month (member_id, month, expected, attended, "
                              "leave) VALUES (:a, :b, :c, :d, :e)"), dict(zip("abcde", MONTH)))
        upgrade("scoring", db_url)
        assert _rows(engine) == ([TALLY], [MONTH])
        sqlite_db = engine.dialect.name == "sqlite"
        if sqlite_db:
            for table in ("member_tally", "member_month"):
                assert "WITHOUT ROWID" in _table_sql(engine, table)
        with session_factory(engine)() as session:  # the key still decides a conflict
            add_counts(session, MemberTally.__table__, ("member_id", "year", "bucket", "status"),
                       ("count",), [(*TALLY[:4], 2), ("m2", 2026, "meeting:committee",
                                                      "absent", 1)])
            session.commit()
        assert sorted(_rows(engine)[0]) == [(*TALLY[:4], 6),
                                            ("m2", 2026, "meeting:committee", "absent", 1)]
        command.downgrade(alembic_config("services.scoring", db_url), "0004")
        assert len(_rows(engine)[0]) == 2 and _rows(engine)[1] == [MONTH]
        if sqlite_db:
            for table in ("member_tally", "member_month"):
                assert "WITHOUT ROWID" not in _table_sql(engine, table)
    finally:
        engine.dispose()


def test_0006_drops_the_indexes_no_read_uses_and_the_downgrade_restores_them(db_url):
    from sqlalchemy import inspect
    upgrade("scoring", db_url, revision="0005")
    engine = make_engine(db_url)

    def indexes():
        inspector = inspect(engine)
        return {table: sorted(ix["name"] for ix in inspector.get_indexes(table))
                for table in ("member_score", "branch_stat")}
    try:
        assert indexes() == {"member_score": ["ix_member_score_branch_path",
                                              "ix_member_score_score"],
                             "branch_stat": ["ix_branch_stat_branch_path", "ix_branch_stat_score"]}
        upgrade("scoring", db_url)
        assert indexes() == {"member_score": [], "branch_stat": []}
        command.downgrade(alembic_config("services.scoring", db_url), "0005")
        assert indexes() == {"member_score": ["ix_member_score_branch_path",
                                              "ix_member_score_score"],
                             "branch_stat": ["ix_branch_stat_branch_path", "ix_branch_stat_score"]}
    finally:
        engine.dispose()


def test_0007_keeps_the_marks_and_claim_marks_takes_them_by_key(db_url):
    """dirty WITHOUT ROWID on SQLite (0007), its marks kept; the drain's claim takes them by
    key, a limited number at a time, leaving the streak marks when asked to."""
    from services.scoring.registry import claim_marks
    upgrade("scoring", db_url, revision="0006")
    engine = make_engine(db_url)
    marks = [("branch", "b1", 2026), ("member", "m1", 2026), ("member", "m2", 2026),
             ("risk", "m1", 0)]
    try:
        with engine.begin() as conn:
            for kind, ident, year in marks:
                conn.execute(text("INSERT INTO dirty VALUES (:k, :i, :y)"),
                             {"k": kind, "i": ident, "y": year})
        upgrade("scoring", db_url)
        if engine.dialect.name == "sqlite":
            assert "WITHOUT ROWID" in _table_sql(engine, "dirty")
        with session_factory(engine)() as session:
            first = claim_marks(session, limit=2, risks=False)
            rest = claim_marks(session, limit=10, risks=False)
            session.commit()
        assert len(first) == 2 and len(rest) == 1
        assert sorted(map(tuple, first + rest)) == marks[:3]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT kind, ident, year FROM dirty")).all() == [marks[3]]
        command.downgrade(alembic_config("services.scoring", db_url), "0006")
        with engine.connect() as conn:  # the mark left is kept on the way down too
            assert conn.execute(text("SELECT kind, ident, year FROM dirty")).all() == [marks[3]]
        if engine.dialect.name == "sqlite":
            assert "WITHOUT ROWID" not in _table_sql(engine, "dirty")
    finally:
        engine.dispose()
