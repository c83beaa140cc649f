"""A year of organization life for a synthetic county: the meetings its branches report.

Each branch holds roughly what the rules ask (assemblies and lectures quarterly, committee and
theme days monthly, each group monthly, org_life and democratic_review once, some study
sessions), some branches skip some (organization life is uneven), and attendance is mostly
present with some leave and some unexcused absence; mobile members attend remotely.
"""
from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

# Share of owed meetings a branch of each category skips (the seed's unevenness).
SKIP_BY_CATEGORY = {"village": 0.10, "community": 0.05, "enterprise": 0.25, "institution": 0.02,
                    "school": 0.05, "social_org": 0.20, "mobile": 0.30}
TOPICS = ("学习党的二十届四中全会精神", "传达上级文件精神", "讨论发展党员工作", "开展批评与自我批评",
          "研究村级重点工作", "学习《中国共产党章程》", "部署为民办实事项目", "学习新修订的条例")


def make_meetings(county, year: int = 2026, seed: int = 11) -> list[dict]:
    """Meeting reports (intake `meeting_reported` data) for every branch over `year`."""
    rng = random.Random(seed)
    branches = {o["org_id"]: o for o in county.organizations if o["kind"] == "branch"}
    groups = defaultdict(list)
    for org in county.organizations:
        if org["kind"] == "group":
            groups[org["parent_id"]].append(org["org_id"])
    roster = defaultdict(list)
    for member in county.members:
        roster[member["branch_id"]].append(member)
    reports = []
    serial: dict[str, int] = defaultdict(int)
    for branch_id, branch in branches.items():
        members = roster[branch_id]
        committee = [m for m in members if m.get("committee_member")]
        skip = SKIP_BY_CATEGORY.get(branch.get("category"), 0.1)
        plan = [("branch_assembly", q * 3 + 2, None) for q in range(4)]
        plan += [("lecture", q * 3 + 3, None) for q in range(4)]
        plan += [("theme_day", m, None) for m in range(1, 13)]
        plan += [("org_life", 12, None), ("democratic_review", 12, None)]
        plan += [("study", m, None) for m in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11)]
        if committee:  # monthly, and a second meeting in most months
            plan += [("committee", m, None) for m in range(1, 13)]
            plan += [("committee", m, None) for m in range(1, 13) if m not in (1, 2, 7, 8)]
        for group_id in groups[branch_id]:
            plan += [("group", m, group_id) for m in range(1, 13)]
        for meeting_type, month, group_id in plan:
            if rng.random() < skip:
                continue
            if meeting_type == "committee":
                expected = committee
            elif meeting_type == "group":
                expected = [m for m in members if m.get("group_id") == group_id]
            else:
                expected = members
            day = rng.randint(1, 28)
            held = dt.datetime(year, month, day, rng.choice((9, 14, 19)), 30)
            key = f"{branch_id}-{meeting_type}-{month:02d}-{group_id or 'b'}"
            serial[key] += 1
            reports.append({
                "meeting_id": f"{key}-{serial[key]}",
                "branch_id": branch_id, "group_id": group_id, "type": meeting_type,
                "held_at": held.isoformat(), "topic": rng.choice(TOPICS),
                "attendance": [_attendance(rng, m) for m in expected],
            })
    rng.shuffle(reports)
    return reports


def _attendance(rng: random.Random, member: dict) -> dict:
    roll = rng.random()
    if member.get("mobile"):
        if roll < 0.70:
            return {"member_id": member["member_id"], "status": "present", "remote": True}
        return {"member_id": member["member_id"], "status": "leave" if roll < 0.85 else "absent"}
    if roll < 0.86:
        return {"member_id": member["member_id"], "status": "present"}
    return {"member_id": member["member_id"], "status": "leave" if roll < 0.94 else "absent"}
