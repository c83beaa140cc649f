"""bench/insert_rows.py runs to the end and prints its figures, both ways storing every row."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_insert_rows_benchmark_prints_its_figures():
    done = subprocess.run([sys.executable, "bench/insert_rows.py", "--rows", "300",
                           "--rounds", "2"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.split("json: ", 1)[1])
    assert figures["rows_stored"] == 300 * 2 * 2
    assert figures["sqlalchemy_ms_median"] > 0 and figures["insert_rows_ms_median"] > 0
