"""Benchmark: a batch's queued rows written to SQLite by SQLAlchemy's executemany against
orglife.common.db.insert_rows (the driver's executemany on tuples, each column converted as
SQLAlchemy converts it), on members' participation table: the rows members' intake of
meetings writes most (about 1.4 million a county year).

    .venv/bin/python bench/insert_rows.py [--rows 20000] [--rounds 5]

Prints the median milliseconds per batch of each way, alternated in one process (machine
speed drifts here within minutes; each way goes first in every other round), and the second
as a percentage of the first. No target: it explains part of the meetings flows' figures.
"""
import argparse
import datetime as dt
import statistics
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

from harness import print_figures  # noqa: E402  (sets sys.path to the repository)

from orglife.common.db import insert_rows, make_engine  # noqa: E402
from orglife.common.migrate import upgrade  # noqa: E402
from services.members.participation import _NEW_PARTICIPATION  # noqa: E402


def batch(tag: str, n: int) -> list[dict]:
    held_at = dt.datetime(2026, 3, 1, 1, 0, tzinfo=dt.timezone.utc)
    return [{"member_id": f"m{i:05d}", "ref": tag, "kind": "meeting", "type": "branch_assembly",
             "branch_id": "b0001", "held_at": held_at, "year": 2026,
             "status": ("present", "leave", "absent")[i % 3], "remote": i % 7 == 0,
             "visiting": False, "topic": "学习党的二十届三中全会精神"} for i in range(n)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'members.db'}"
        upgrade("members", url)
        engine = make_engine(url)
        times = {"sqlalchemy": [], "insert_rows": []}
        for round_ in range(args.rounds):
            # each way goes first in every other round: the table grows as rounds go on
            for way in list(times)[::1 if round_ % 2 == 0 else -1]:
                rows = batch(f"{way}-{round_}", args.rows)
                with engine.begin() as connection:
                    started = time.perf_counter()
                    if way == "insert_rows":
                        insert_rows(connection, _NEW_PARTICIPATION, rows)
                    else:
                        connection.execute(_NEW_PARTICIPATION, rows)
                    times[way].append((time.perf_counter() - started) * 1000)
        with engine.connect() as connection:
            stored = connection.exec_driver_sql("SELECT count(*) FROM participation").scalar()
        engine.dispose()
    old, new = (statistics.median(times[way]) for way in times)
    print_figures("insert_rows (participation lines into SQLite)", {
        "rows_per_batch": args.rows, "rounds": args.rounds, "rows_stored": stored,
        "sqlalchemy_ms_median": round(old, 1), "insert_rows_ms_median": round(new, 1),
        "insert_rows_time_pct_of_sqlalchemy": round(100 * new / old)})


if __name__ == "__main__":
    main()
