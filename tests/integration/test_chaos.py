"""A small bench/chaos.py in the suite: meetings flow through intake while the broker is killed
with SIGKILL and restarted and each service process is killed; the outcome equals an
undisturbed run of the same reports (nothing lost, differing, parked or done twice)."""
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_kill_minus_9_under_a_flow_converges_to_the_undisturbed_outcome(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    import chaos
    from synthetic import make_county
    from synthetic_meetings import make_meetings

    county = make_county(seed=7, townships=2, branches=12, members=260)
    reports = sorted(make_meetings(county), key=lambda r: r["held_at"])[:300]
    # undisturbed, the same reports can come faster; the storm needs its ten seconds of flow
    calm, _ = chaos.run(tmp_path / "calm", county, reports, 150, [], 180, say=lambda *_: None)
    blows = [(2.0, "kill-broker", None), (4.0, "start-broker", None),
             (6.5, "kill-service", "members"), (8.0, "kill-service", "meetings")]
    stormy, _ = chaos.run(tmp_path / "storm", county, reports, 30, blows, 180,
                          say=lambda *_: None)
    assert len(calm["meetings"]) == len(reports)
    assert chaos.compare(calm, stormy) == {"lost": 0, "differing": 0, "parked": 0,
                                           "rejected": 0, "duplicates": 0}
