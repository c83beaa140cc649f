"""Benchmark: scoring's writes to its keyed tables for every attendance line: the tally
upserts (`tallies.add_counts` on member_tally and member_month) and the dirty marks (the
consumer's INSERT .. ON CONFLICT DO NOTHING, the drain's `registry.claim_marks`), into SQLite
tables with a rowid, as before migrations 0005 and 0007, and WITHOUT ROWID, as since. A
rowid table keeps each row in a B-tree of its own beside its primary key's index, so an
upsert finds the key in one and updates the other; WITHOUT ROWID, the key's B-tree holds
the row.

    .venv/bin/python bench/tally_tables.py [--batches 120] [--rounds 2]

Each layout is made by scoring's own migrations (0004: rowid; head: WITHOUT ROWID), filled
with the same year of tallies and months of a county of 35,000 members, then takes the same
batches: 300 meetings of 14 members each, the deltas summed per key and sorted as the
consumer does, with a mark per member and one per member's streak, one transaction per
batch, then the drain's claim of the marks in one of its own, and a final checkpoint (orglife's pragmas). The
layouts alternate which goes first in each round (machine speed drifts here within
minutes). Prints the median process CPU seconds and wall seconds of each and the WITHOUT
ROWID figures as a percentage of the rowid ones. No target: it explains migrations 0005
and 0007.
"""
import argparse
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from harness import print_figures  # noqa: E402  (sets sys.path to the repository)

from orglife.common.db import make_engine, session_factory  # noqa: E402
from orglife.common.migrate import upgrade  # noqa: E402
from services.scoring.models import MemberMonth, MemberTally  # noqa: E402
from services.scoring.registry import _marking, claim_marks  # noqa: E402
from services.scoring.tallies import add_counts, execute_many  # noqa: E402

MEMBERS = 35_000
PER_MEETING = 14
MEETINGS_PER_BATCH = 300
YEAR_MEETINGS = 100_000  # the prefill
TYPES = ("branch_assembly", "committee", "group_meeting", "party_lecture", "democratic_life")
STATUSES = ("present", "present", "present", "leave", "absent")
LAYOUTS = {"rowid": "0004", "without_rowid": "head"}  # 0005-0007 are what differs


def member_ids() -> list[str]:
    return [f"m{i:06d}" for i in range(MEMBERS)]


def deltas(rnd: random.Random, members: list[str], meetings: int) -> tuple[list, list]:
    """(tally rows, month rows) of `meetings` meetings, summed per key as Changes does."""
    tally, months = {}, {}
    for _ in range(meetings):
        bucket = f"meeting:{rnd.choice(TYPES)}"
        month = f"2026-{rnd.randint(1, 12):02d}"
        for member in rnd.sample(members, PER_MEETING):
            status = rnd.choice(STATUSES)
            key = (member, 2026, bucket, status)
            tally[key] = tally.get(key, 0) + 1
            counts = months.setdefault((member, month), [0, 0, 0])
            counts[0] += 1
            counts[1] += status == "present"
            counts[2] += status == "leave"
    return ([(*key, n) for key, n in tally.items()],
            [(*key, *counts) for key, counts in months.items()])


def write(session, tally: list, months: list) -> None:
    add_counts(session, MemberTally.__table__, ("member_id", "year", "bucket", "status"),
               ("count",), tally)
    add_counts(session, MemberMonth.__table__, ("member_id", "month"),
               ("expected", "attended", "leave"), months)
    members = sorted({row[0] for row in tally})
    marks = [("member", member, 2026) for member in members]
    marks += [("risk", member, 0) for member in members]
    connection = session.connection()
    execute_many(connection, _marking(connection.dialect.name), ("kind", "ident", "year"),
                 sorted(marks))


def checkpoint(engine, mode: str) -> None:
    """Outside a transaction (orglife's SQLite connections begin one at the first statement)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")


def prepared(folder: Path, layout: str, round_: int) -> Path:
    """A database of `layout` holding a county year's tallies (the same in both)."""
    path = folder / f"{layout}-{round_}.db"
    upgrade("scoring", f"sqlite:///{path}", revision=LAYOUTS[layout])
    engine = make_engine(f"sqlite:///{path}")
    rnd, members = random.Random(1), member_ids()
    try:
        for _ in range(YEAR_MEETINGS // 5_000):
            with session_factory(engine)() as session:
                write(session, *deltas(rnd, members, 5_000))
                claim_marks(session, limit=10 ** 9)
                session.commit()
        checkpoint(engine, "TRUNCATE")
    finally:
        engine.dispose()
    return path


def claim(session, layout: str) -> None:
    """The drain's claim: by key since 0007 (`registry.claim_marks`), by rowid before."""
    if layout == "without_rowid":
        claim_marks(session)
        return
    session.connection().exec_driver_sql(
        "DELETE FROM dirty WHERE rowid IN (SELECT rowid FROM dirty LIMIT 20000) "
        "RETURNING kind, ident, year").all()


def run(path: Path, layout: str, batches: int, seed: int) -> tuple[float, float]:
    """(CPU s, wall s) of `batches` consumer batches and a final checkpoint."""
    engine = make_engine(f"sqlite:///{path}")
    rnd, members = random.Random(seed), member_ids()
    work = [deltas(rnd, members, MEETINGS_PER_BATCH) for _ in range(batches)]
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        for tally, months in work:
            with session_factory(engine)() as session:
                write(session, tally, months)
                session.commit()
            with session_factory(engine)() as session:  # the drain takes the marks
                claim(session, layout)
                session.commit()
        checkpoint(engine, "PASSIVE")
    finally:
        engine.dispose()
    return time.process_time() - cpu, time.perf_counter() - wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cpu = {layout: [] for layout in LAYOUTS}
    wall = {layout: [] for layout in LAYOUTS}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for layout in list(LAYOUTS)[::1 if round_ % 2 == 0 else -1]:
                path = prepared(Path(folder), layout, round_)
                spent, took = run(path, layout, args.batches, seed=100 + round_)
                cpu[layout].append(spent)
                wall[layout].append(took)
    figures = {"batches": args.batches, "meetings_per_batch": MEETINGS_PER_BATCH,
               "rounds": args.rounds}
    for layout in LAYOUTS:
        figures[f"{layout}_cpu_s"] = round(statistics.median(cpu[layout]), 2)
        figures[f"{layout}_wall_s"] = round(statistics.median(wall[layout]), 2)
    figures["without_rowid_cpu_pct"] = round(100 * figures["without_rowid_cpu_s"]
                                             / figures["rowid_cpu_s"])
    figures["without_rowid_wall_pct"] = round(100 * figures["without_rowid_wall_s"]
                                              / figures["rowid_wall_s"])
    print_figures("tally_tables (scoring's tallies and marks, SQLite rowid vs WITHOUT ROWID)",
                  figures)


if __name__ == "__main__":
    main()
