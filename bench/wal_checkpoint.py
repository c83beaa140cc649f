"""Benchmark: how often SQLite copies its WAL back into the database (`wal_autocheckpoint`),
on the writes scoring's consumer makes most: a batch of meetings' attendance into its copy,
the members' tallies and their dirty marks, on a database already holding a county year's
attendance (meeting ids random as meetings makes them, so inserts land on index pages all
over, as they do late in a year). Left out: the meeting rows, the months, the inbox, the
drain's own writes and concurrent readers (which hold checkpoints back); bench/scoring.py
runs all of it.

    .venv/bin/python bench/wal_checkpoint.py [--prefill 1400000] [--batches 120] [--rounds 2]

Each setting starts from a copy of one prefilled database; the settings alternate which goes
first in each round (machine speed drifts here within minutes). Prints, per setting, the
median process CPU seconds and wall seconds of the batches *including* a final checkpoint
(a larger interval must not just leave the copying for later), and each as a percentage of
SQLite's default of 1,000 pages. orglife's setting is orglife.common.db.WAL_CHECKPOINT_PAGES.
No target: it explains the choice.
"""
import argparse
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from harness import print_figures  # noqa: E402  (sets sys.path to the repository)

from orglife.common.db import WAL_CHECKPOINT_PAGES, make_engine  # noqa: E402
from orglife.common.migrate import upgrade  # noqa: E402

MEMBERS = 35_000
PER_MEETING = 14
MEETINGS_PER_BATCH = 300


def member_ids() -> list[str]:
    return [f"m{i:06d}" for i in range(MEMBERS)]


def prefill(path: Path, rows: int, rnd: random.Random) -> None:
    """scoring's schema (its migrations), then `rows` attendance rows and their tallies."""
    upgrade("scoring", f"sqlite:///{path}")
    members = member_ids()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("BEGIN")
    tallies = {}
    for meeting in range(rows // PER_MEETING):
        mid = f"mt-{rnd.getrandbits(64):016x}"
        chosen = rnd.sample(members, PER_MEETING)
        db.executemany("INSERT INTO attendance_copy VALUES (?,?,'present',0,1)",
                       [(mid, member) for member in chosen])
        for member in chosen:
            tallies[member] = tallies.get(member, 0) + 1
    db.executemany("INSERT INTO member_tally VALUES (?,2026,'meeting:branch_assembly',"
                   "'present',?)", list(tallies.items()))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def run(path: Path, pages: int, batches: int, seed: int) -> tuple[float, float]:
    """(CPU s, wall s) of `batches` consumer batches and a final checkpoint."""
    engine = make_engine(f"sqlite:///{path}")  # orglife's pragmas, then the one measured
    rnd = random.Random(seed)
    members = member_ids()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        _batches(engine, rnd, members, pages, batches)
    finally:
        engine.dispose()
    return time.process_time() - cpu, time.perf_counter() - wall


def _batches(engine, rnd: random.Random, members: list[str], pages: int,
             batches: int) -> None:
    with engine.connect() as connection:
        db = connection.connection.dbapi_connection
        db.execute(f"PRAGMA wal_autocheckpoint={pages}")
        for _ in range(batches):
            db.execute("BEGIN IMMEDIATE")
            attendance, tally = [], {}
            for _ in range(MEETINGS_PER_BATCH):
                mid = f"mt-{rnd.getrandbits(64):016x}"
                for member in rnd.sample(members, PER_MEETING):
                    attendance.append((mid, member))
                    tally[member] = tally.get(member, 0) + 1
            db.executemany("INSERT INTO attendance_copy VALUES (?,?,'present',0,1)", attendance)
            db.executemany(
                "INSERT INTO member_tally VALUES (?,2026,'meeting:branch_assembly','present',?) "
                "ON CONFLICT DO UPDATE SET count = count + excluded.count", list(tally.items()))
            db.executemany("INSERT INTO dirty VALUES ('member',?,2026) ON CONFLICT DO NOTHING",
                           [(member,) for member in tally])
            db.execute("COMMIT")
            db.execute("DELETE FROM dirty")  # the drain takes the marks
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefill", type=int, default=1_400_000)
    parser.add_argument("--batches", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = sorted({1000, WAL_CHECKPOINT_PAGES})
    cpu = {pages: [] for pages in settings}
    wall = {pages: [] for pages in settings}
    with tempfile.TemporaryDirectory() as folder:
        seed_db = Path(folder) / "prefilled.db"
        prefill(seed_db, args.prefill, random.Random(1))
        for round_ in range(args.rounds):
            for pages in settings[::1 if round_ % 2 == 0 else -1]:
                path = Path(folder) / "run.db"
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                shutil.copy(seed_db, path)
                spent, took = run(path, pages, args.batches, seed=100 + round_)
                cpu[pages].append(spent)
                wall[pages].append(took)
    figures = {"prefilled_rows": args.prefill, "batches": args.batches,
               "rows_per_batch": MEETINGS_PER_BATCH * PER_MEETING, "rounds": args.rounds}
    base_cpu, base_wall = statistics.median(cpu[1000]), statistics.median(wall[1000])
    for pages in settings:
        c, w = statistics.median(cpu[pages]), statistics.median(wall[pages])
        figures[f"pages_{pages}_cpu_s"] = round(c, 2)
        figures[f"pages_{pages}_wall_s"] = round(w, 2)
        if pages != 1000:
            figures[f"pages_{pages}_cpu_pct_of_1000"] = round(100 * c / base_cpu)
            figures[f"pages_{pages}_wall_pct_of_1000"] = round(100 * w / base_wall)
    print_figures("wal_checkpoint (scoring's consumer writes, SQLite)", figures)


if __name__ == "__main__":
    main()
