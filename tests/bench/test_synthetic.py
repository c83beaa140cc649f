"""The synthetic county generator: exact sizes, valid structure, determinism, realistic mix."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import bench.synthetic as synthetic  # noqa: E402
from bench.synthetic import County, make_county  # noqa: E402
from orglife.importfile import read_member_file  # noqa: E402

PARENT_KINDS = {
    "county": {None},
    "township": {"county"},
    "general_branch": {"township"},
    "branch": {"township", "general_branch"},
    "group": {"branch"},
}
# The mix the generator is meant to produce (brief), independent of the module's constants.
CATEGORY_SHARES = {"village": 0.60, "community": 0.15, "enterprise": 0.12, "institution": 0.06,
                   "school": 0.03, "social_org": 0.02, "mobile": 0.02}
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
CJK_NAME_RE = re.compile(r"^[\u4e00-\u9fff]{2,4}$")


@pytest.fixture(scope="module")
def county() -> County:
    return make_county()


def _orgs(county: County, kind: str) -> list[dict]:
    return [o for o in county.organizations if o["kind"] == kind]


def test_default_sizes_are_exact(county):
    assert len(_orgs(county, "county")) == 1
    assert len(_orgs(county, "township")) == 20
    assert len(_orgs(county, "branch")) == 1600
    assert len(county.members) == 35000


@pytest.mark.parametrize(
    "townships, branches, members",
    [(3, 40, 900), (1, 5, 20), (2, 10, 11), (4, 1, 7), (1, 0, 0), (20, 1600, 35001)],
)
def test_requested_sizes_are_exact(townships, branches, members):
    county = make_county(seed=5, townships=townships, branches=branches, members=members,
                         county_id="c9")
    assert len(_orgs(county, "township")) == townships
    assert len(_orgs(county, "branch")) == branches
    assert len(county.members) == members
    assert _orgs(county, "county")[0]["org_id"] == "c9"
    _assert_structure(county)


def test_impossible_sizes_are_refused():
    with pytest.raises(ValueError):
        make_county(townships=0, branches=3, members=10)
    with pytest.raises(ValueError):
        make_county(townships=1, branches=0, members=10)


def _assert_structure(county: County) -> None:
    """Parents-first, SPEC parent kinds, unique ids and names, members in real branches."""
    kind_of: dict[str, str] = {}
    names = set()
    for org in county.organizations:
        assert org["org_id"] not in kind_of, org
        parent = org["parent_id"]
        assert parent is None or parent in kind_of, f"{org['org_id']} listed before its parent"
        assert (kind_of[parent] if parent else None) in PARENT_KINDS[org["kind"]], org
        assert (org["kind"] == "branch") == ("category" in org)
        assert org["name"] not in names
        names.add(org["name"])
        kind_of[org["org_id"]] = org["kind"]
    group_branch = {o["org_id"]: o["parent_id"] for o in county.organizations if o["kind"] == "group"}
    for member in county.members:
        assert kind_of[member["branch_id"]] == "branch"
        if "group_id" in member:
            assert group_branch[member["group_id"]] == member["branch_id"]


def test_structure(county):
    _assert_structure(county)


def test_id_formats(county):
    ids = {o["kind"]: [] for o in county.organizations}
    for org in county.organizations:
        ids[org["kind"]].append(org["org_id"])
    assert ids["township"][0] == "t01" and ids["township"][-1] == "t20"
    assert ids["branch"][0] == "b0001" and ids["branch"][-1] == "b1600"
    assert all(re.fullmatch(r"g\d{4}-[1-4]", g) for g in ids["group"])
    assert all(re.fullmatch(r"gb\d{2}-\d+", g) for g in ids["general_branch"])
    member_ids = [m["member_id"] for m in county.members]
    assert member_ids[0] == "m000001" and member_ids[-1] == "m035000"
    assert len(set(member_ids)) == len(member_ids)


def test_phones_valid_and_unique(county):
    phones = [m["phone"] for m in county.members]
    assert all(isinstance(p, str) and PHONE_RE.match(p) for p in phones)
    assert len(set(phones)) == len(phones)


def test_phones_unique_even_in_a_crowded_number_space(monkeypatch):
    monkeypatch.setattr(synthetic, "_PHONE_PREFIXES", ("139",))
    monkeypatch.setattr(synthetic, "_PHONE_SUFFIXES", 2000)
    county = make_county(seed=1, townships=2, branches=40, members=1500)
    phones = [m["phone"] for m in county.members]
    assert len(set(phones)) == 1500
    assert all(PHONE_RE.match(p) for p in phones)


def test_deterministic_for_a_seed():
    a = make_county(seed=3, townships=4, branches=60, members=1300)
    b = make_county(seed=3, townships=4, branches=60, members=1300)
    c = make_county(seed=4, townships=4, branches=60, members=1300)
    assert a == b
    assert a.members != c.members and a.organizations != c.organizations


def test_deterministic_across_processes():
    """No reliance on hash randomisation: another interpreter produces the same county."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "from bench.synthetic import make_county;"
        "c = make_county(seed=9, townships=2, branches=12, members=200);"
        "print(json.dumps([c.organizations, c.members], ensure_ascii=False))"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True,
                       check=True, env={"PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


def test_category_mix(county):
    counts = Counter(o["category"] for o in _orgs(county, "branch"))
    assert set(counts) == set(CATEGORY_SHARES)
    for category, share in CATEGORY_SHARES.items():
        assert abs(counts[category] / 1600 - share) < 0.01, (category, counts[category])


def test_general_branches(county):
    branches = _orgs(county, "branch")
    under_gb = [b for b in branches if b["parent_id"].startswith("gb")]
    assert 0.08 <= len(under_gb) / len(branches) <= 0.12
    by_gb = Counter(b["parent_id"] for b in under_gb)
    assert set(by_gb) == {g["org_id"] for g in _orgs(county, "general_branch")}
    assert all(2 <= n <= 5 for n in by_gb.values())
    for gb in _orgs(county, "general_branch"):
        assert gb["name"].endswith("党总支")
        assert len({b["category"] for b in under_gb if b["parent_id"] == gb["org_id"]}) == 1


def test_groups_only_in_branches_above_15(county):
    sizes = Counter(m["branch_id"] for m in county.members)
    groups = Counter(o["parent_id"] for o in _orgs(county, "group"))
    for branch in _orgs(county, "branch"):
        n = groups.get(branch["org_id"], 0)
        if sizes[branch["org_id"]] > 15:
            assert 2 <= n <= 4
        else:
            assert n == 0
    grouped = [m for m in county.members if sizes[m["branch_id"]] > 15]
    assert sum("group_id" in m for m in grouped) / len(grouped) > 0.9


def test_branch_names_are_realistic(county):
    names = [o["name"] for o in _orgs(county, "branch")]
    assert all(n.endswith("党支部") for n in names)
    by_category = {c: [o["name"] for o in _orgs(county, "branch") if o["category"] == c]
                   for c in CATEGORY_SHARES}
    assert sum("村" in n for n in by_category["village"]) == len(by_category["village"])
    assert all("社区" in n for n in by_category["community"])
    assert all("公司" in n for n in by_category["enterprise"])
    assert all("流动党员" in n for n in by_category["mobile"])
    assert all(re.search(r"[镇乡]党委$", t["name"]) for t in _orgs(county, "township"))


def test_member_mix(county):
    members = county.members
    n = len(members)
    status = Counter(m["status"] for m in members)
    assert set(status) == {"formal", "probationary"}
    assert 0.05 < status["probationary"] / n < 0.09
    mobile = [m for m in members if m["mobile"]]
    assert 0.05 < len(mobile) / n < 0.07
    assert all(m.get("mobile_location") for m in mobile)
    assert not any("mobile_location" in m for m in members if not m["mobile"])
    assert 0.002 < sum(m["no_vote"] for m in members) / n < 0.008
    assert 0.27 < sum("email" in m for m in members) / n < 0.33
    assert all(re.fullmatch(r"[a-z]+\d+@example\.(com|net|org)", m["email"])
               for m in members if "email" in m)
    assert all(CJK_NAME_RE.match(m["name"]) for m in members)
    surnames = Counter(m["name"][0] for m in members)
    assert surnames.most_common(1)[0][0] in "王李张"


def test_mobile_branch_members_are_mobile(county):
    mobile_branches = {o["org_id"] for o in _orgs(county, "branch") if o["category"] == "mobile"}
    members = [m for m in county.members if m["branch_id"] in mobile_branches]
    assert members and all(m["mobile"] for m in members)


def test_committee_members(county):
    by_branch: dict[str, list[dict]] = {}
    for m in county.members:
        by_branch.setdefault(m["branch_id"], []).append(m)
    for branch_members in by_branch.values():
        committee = [m for m in branch_members if m["committee_member"]]
        assert all(m["status"] == "formal" and not m["no_vote"] for m in committee)
        if len(branch_members) >= 7 and sum(m["status"] == "formal" for m in branch_members) >= 5:
            assert 3 <= len(committee) <= 5
        elif len(branch_members) < 7:
            assert committee == []


def test_joined_on(county):
    dates = [m["joined_on"] for m in county.members]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in dates)
    assert min(dates) >= "1960-01-01" and max(dates) <= "2026-09-01"
    probationary = [m["joined_on"] for m in county.members if m["status"] == "probationary"]
    assert min(probationary) > "2025-09-01"


def test_fast_enough():
    started = time.perf_counter()
    make_county(seed=11)
    assert time.perf_counter() - started < 2.0


def test_cli_writes_an_importable_xlsx(tmp_path):
    out = tmp_path / "out.xlsx"
    subprocess.run([sys.executable, str(REPO / "bench" / "synthetic.py"), "--xlsx", str(out),
                    "--members", "120", "--seed", "2"], check=True, capture_output=True)
    result = read_member_file(out)
    expected = make_county(seed=2, townships=1, branches=5, members=120)
    assert len(result.rows) == 120 and result.unknown_headers == []
    assert result.line_numbers == list(range(2, 122))
    assert [r["member_id"] for r in result.rows] == [m["member_id"] for m in expected.members]
    assert [r["branch"] for r in result.rows] == [m["branch_id"] for m in expected.members]


def test_the_xlsx_for_trying_an_import_can_name_one_existing_branch(tmp_path):
    from orglife.importfile import read_member_file
    path = tmp_path / "花名册.xlsx"
    assert synthetic.main(["--members", "40", "--xlsx", str(path), "--branch", "b1"]) == 0
    rows = read_member_file(path).rows
    assert len(rows) == 40 and {row["branch"] for row in rows} == {"b1"}
    assert not any("group" in row for row in rows)
