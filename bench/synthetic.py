"""Deterministic synthetic county: organizations and members shaped like a real county.

Benchmarks, the demo and tests need a county of realistic size and shape (SPEC §6: ~20
townships, ~1,600 branches, ~35,000 members) without any real personal data. Everything comes
from one seeded `random.Random`, so a seed always gives the same county. Names are built from
syllable lists; phones are random valid-looking mobile numbers; emails use the reserved
example.com/.net/.org domains.

    python bench/synthetic.py --xlsx out.xlsx --members 500
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["County", "make_county", "CATEGORY_SHARES", "REFERENCE_DATE"]

# "Now" for generated data; members joined at least two months before it.
REFERENCE_DATE = dt.date(2026, 11, 1)
LATEST_JOIN = dt.date(2026, 9, 1)
EARLIEST_JOIN = dt.date(1960, 1, 1)
PROBATION_DAYS = 365

CATEGORY_SHARES: dict[str, float] = {
    "village": 0.60,
    "community": 0.15,
    "enterprise": 0.12,
    "institution": 0.06,
    "school": 0.03,
    "social_org": 0.02,
    "mobile": 0.02,
}
# Relative branch size by category (village branches are the big ones).
_CATEGORY_SIZE = {
    "village": 26, "community": 24, "enterprise": 11, "institution": 20,
    "school": 16, "social_org": 8, "mobile": 14,
}
# Categories that plausibly form a 党总支 with several sub-branches.
_GENERAL_BRANCH_CATEGORIES = ("village", "community", "institution", "enterprise", "school")

GENERAL_BRANCH_SHARE = 0.10       # branches under a general_branch instead of the township
GROUPS_ABOVE = 15                 # branches with more members than this get 2-4 groups
GROUPED_SHARE = 0.95              # members of such branches assigned to a group
COMMITTEE_MIN_BRANCH_SIZE = 7     # 2018 regulations: a committee from 7 members up
PROBATIONARY_SHARE = 0.07
MOBILE_SHARE = 0.06
NO_VOTE_SHARE = 0.005
EMAIL_SHARE = 0.30
MIN_BRANCH_SIZE = 3               # a branch needs at least 3 members

_PLACE_FIRST = (
    "青石白龙凤黄新大小东西南北金马桃柳杨梅花清安永长平兴福高双三五"
    "红绿银玉松竹兰桂茶枫柏槐沙泉田河湖岩鹤鹿云溪望太宝富乐和仁义德"
)
_PLACE_SECOND = (
    "山桥河溪岭坪湖田塘口坝沟林泉台湾港洲岗冲垭铺集店庄寨营堡屯峪"
    "源川滩陂岙圩埠园坡"
)
_COUNTY_NAMES = ("清河县", "青山县", "安平县", "永丰县", "石城县", "长宁县", "兴和县", "桃源县")
_COMMUNITY_NAMES = (
    "城东", "城西", "城南", "城北", "建设路", "人民路", "解放路", "幸福里", "和平", "文化路",
    "新华", "东风", "胜利", "光明", "朝阳", "滨江", "站前", "府前", "学府", "锦绣",
)
_INDUSTRIES = (
    "建材", "农业科技", "食品", "纺织", "机械制造", "物流", "电子科技", "茶业", "新能源",
    "建筑工程", "服装", "生物科技", "酒业", "矿业", "家具", "水泥", "米业", "畜牧",
)
_INSTITUTIONS = (
    "人民政府机关", "卫生院", "财政所", "农业农村服务中心", "司法所", "市场监管所",
    "文化站", "供电所", "自然资源所", "社会事务办", "退役军人服务站", "派出所",
)
_SCHOOLS = ("中心小学", "中学", "中心幼儿园", "第二小学", "职业学校")
_SOCIAL_ORGS = ("商会", "老年协会", "志愿者协会", "个体劳动者协会", "种植协会", "养殖协会", "红白理事会")
_DESTINATIONS = (
    ("广东省深圳市", 9), ("广东省广州市", 7), ("广东省东莞市", 6), ("浙江省杭州市", 5),
    ("浙江省宁波市", 3), ("江苏省苏州市", 5), ("上海市", 6), ("北京市", 4),
    ("福建省厦门市", 3), ("福建省泉州市", 2), ("湖北省武汉市", 3), ("四川省成都市", 3),
    ("重庆市", 3), ("天津市", 2),
)
_ORDINALS = "一二三四五六七八九十"

# (surname, pinyin, weight per mille of population, roughly)
_SURNAMES = (
    ("王", "wang", 71), ("李", "li", 70), ("张", "zhang", 67), ("刘", "liu", 54), ("陈", "chen", 45),
    ("杨", "yang", 31), ("黄", "huang", 22), ("赵", "zhao", 20), ("吴", "wu", 20), ("周", "zhou", 19),
    ("徐", "xu", 13), ("孙", "sun", 13), ("马", "ma", 11), ("朱", "zhu", 11), ("胡", "hu", 10),
    ("郭", "guo", 10), ("何", "he", 9), ("林", "lin", 9), ("高", "gao", 9), ("罗", "luo", 9),
    ("郑", "zheng", 8), ("梁", "liang", 7), ("谢", "xie", 6), ("宋", "song", 6), ("唐", "tang", 6),
    ("许", "xu", 5), ("韩", "han", 5), ("冯", "feng", 5), ("邓", "deng", 5), ("曹", "cao", 5),
    ("彭", "peng", 5), ("曾", "zeng", 5), ("肖", "xiao", 5), ("田", "tian", 4), ("董", "dong", 4),
    ("袁", "yuan", 4), ("潘", "pan", 4), ("于", "yu", 4), ("蒋", "jiang", 4), ("蔡", "cai", 4),
    ("余", "yu", 4), ("杜", "du", 4), ("叶", "ye", 4), ("程", "cheng", 4), ("苏", "su", 3),
    ("魏", "wei", 3), ("吕", "lv", 3), ("丁", "ding", 3), ("任", "ren", 3), ("沈", "shen", 3),
    ("姚", "yao", 3), ("卢", "lu", 3), ("姜", "jiang", 3), ("崔", "cui", 3), ("钟", "zhong", 3),
    ("谭", "tan", 3), ("陆", "lu", 3), ("汪", "wang", 3), ("范", "fan", 3), ("金", "jin", 3),
    ("石", "shi", 3), ("廖", "liao", 3), ("贾", "jia", 2), ("夏", "xia", 2), ("韦", "wei", 2),
    ("付", "fu", 2), ("方", "fang", 2), ("白", "bai", 2), ("邹", "zou", 2), ("孟", "meng", 2),
    ("熊", "xiong", 2), ("秦", "qin", 2), ("邱", "qiu", 2), ("江", "jiang", 2), ("尹", "yin", 2),
    ("薛", "xue", 2), ("段", "duan", 2), ("雷", "lei", 2), ("侯", "hou", 2), ("龙", "long", 2),
    ("史", "shi", 2), ("陶", "tao", 2), ("黎", "li", 2), ("贺", "he", 2), ("顾", "gu", 2),
    ("毛", "mao", 2), ("郝", "hao", 2), ("龚", "gong", 2), ("邵", "shao", 2), ("万", "wan", 2),
    ("钱", "qian", 2), ("严", "yan", 2), ("武", "wu", 2), ("戴", "dai", 2), ("覃", "qin", 1),
    ("莫", "mo", 1), ("孔", "kong", 1), ("向", "xiang", 1), ("汤", "tang", 1), ("欧阳", "ouyang", 1),
)
_GIVEN = tuple(
    pair.split(":") for pair in (
        "建:jian 国:guo 华:hua 明:ming 军:jun 伟:wei 芳:fang 秀:xiu 英:ying 丽:li 敏:min 强:qiang "
        "磊:lei 洋:yang 勇:yong 艳:yan 杰:jie 娟:juan 涛:tao 超:chao 霞:xia 平:ping 刚:gang 桂:gui "
        "兰:lan 红:hong 玉:yu 梅:mei 飞:fei 鹏:peng 辉:hui 林:lin 波:bo 宁:ning 海:hai 峰:feng "
        "春:chun 燕:yan 琴:qin 云:yun 丹:dan 俊:jun 文:wen 德:de 志:zhi 忠:zhong 福:fu 荣:rong "
        "庆:qing 生:sheng 成:cheng 金:jin 山:shan 东:dong 小:xiao 晓:xiao 静:jing 婷:ting 雪:xue "
        "新:xin 永:yong 长:chang 学:xue 宏:hong 振:zhen 安:an 利:li 凤:feng 玲:ling 萍:ping 颖:ying "
        "浩:hao 宇:yu 欣:xin 佳:jia 子:zi 雨:yu 思:si 嘉:jia 斌:bin 亮:liang 帅:shuai 晨:chen "
        "阳:yang 瑞:rui 鑫:xin 琳:lin 倩:qian 慧:hui 彬:bin 龙:long 祥:xiang 贵:gui 珍:zhen "
        "兵:bing 卫:wei 民:min 胜:sheng 秋:qiu 菊:ju 莲:lian 桃:tao 清:qing 泉:quan 松:song"
    ).split()
)
_PHONE_PREFIXES = tuple(
    [f"13{d}" for d in range(10)]
    + ["150", "151", "152", "153", "155", "156", "157", "158", "159"]
    + ["166", "177", "178", "180", "181", "182", "183", "184", "185", "186", "187", "188", "189"]
    + ["191", "198", "199"]
)
_PHONE_SUFFIXES = 10 ** 8    # eight random digits after the three-digit prefix
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")


@dataclass
class County:
    """A generated county. Organizations are parents-first, ready to register in order."""

    organizations: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)


def make_county(
    seed: int = 1,
    townships: int = 20,
    branches: int = 1600,
    members: int = 35000,
    county_id: str = "county",
) -> County:
    """Generate a county with exactly `townships` townships, `branches` branches and `members`
    members (general branches and groups come on top), deterministically from `seed`."""
    if townships < 0 or branches < 0 or members < 0:
        raise ValueError("sizes must not be negative")
    if branches and not townships:
        raise ValueError("branches need at least one township")
    if members and not branches:
        raise ValueError("members need at least one branch")
    return _CountyBuilder(random.Random(seed), county_id).build(townships, branches, members)


class _CountyBuilder:
    def __init__(self, rng: random.Random, county_id: str):
        self.rng = rng
        self.county_id = county_id
        self.used_bases: set[str] = set()
        self.surnames = [s for s in _SURNAMES]
        self.surname_cum = _cumulative(w for _, _, w in _SURNAMES)
        self.dest_names = [d for d, _ in _DESTINATIONS]
        self.dest_cum = _cumulative(w for _, w in _DESTINATIONS)

    # -- structure -------------------------------------------------------------------------
    def build(self, n_townships: int, n_branches: int, n_members: int) -> County:
        rng = self.rng
        county_name = rng.choice(_COUNTY_NAMES)
        county = {"org_id": self.county_id, "name": f"{county_name}委", "kind": "county",
                  "parent_id": None}

        width_t = max(2, len(str(n_townships)))
        township_names = self._township_names(n_townships)
        towns = [
            {"org_id": f"t{i + 1:0{width_t}d}", "name": f"{township_names[i]}党委",
             "kind": "township", "parent_id": self.county_id, "_place": township_names[i]}
            for i in range(n_townships)
        ]

        per_town = _allocate(n_branches, [rng.uniform(0.6, 1.4) for _ in towns])
        pool = dict(zip(CATEGORY_SHARES, _allocate(n_branches, list(CATEGORY_SHARES.values()))))

        # Plan general branches: (township index, category, number of sub-branches).
        plans = self._general_branch_plans(per_town, pool)
        standalone = [c for c, n in pool.items() for _ in range(n)]
        rng.shuffle(standalone)

        general_branches: list[dict[str, Any]] = []
        branch_specs: list[tuple[dict[str, Any], str]] = []   # (org without id, category)
        gb_count = [0] * len(towns)
        for t_index, town in enumerate(towns):
            specs: list[tuple[dict[str, Any], str]] = []
            used = 0
            for plan_town, category, size in plans:
                if plan_town != t_index:
                    continue
                gb_count[t_index] += 1
                gb_id = f"gb{t_index + 1:0{width_t}d}-{gb_count[t_index]}"
                base = self._base_name(category, town["_place"])
                general_branches.append({"org_id": gb_id, "name": f"{base}党总支",
                                         "kind": "general_branch", "parent_id": town["org_id"]})
                for k in range(size):
                    specs.append(({"name": f"{base}第{_ordinal(k + 1)}党支部", "parent_id": gb_id},
                                  category))
                used += size
            for _ in range(per_town[t_index] - used):
                category = standalone.pop()
                spec = {"parent_id": town["org_id"]}
                if category == "mobile":
                    spec["_location"] = self._destination()
                base = self._base_name(category, town["_place"], spec.get("_location", ""))
                spec["name"] = f"{base}党支部"
                specs.append((spec, category))
            rng.shuffle(specs)
            branch_specs.extend(specs)

        width_b = max(4, len(str(n_branches)))
        branch_orgs = []
        locations: list[str | None] = []
        for i, (spec, category) in enumerate(branch_specs):
            locations.append(spec.get("_location"))
            branch_orgs.append({"org_id": f"b{i + 1:0{width_b}d}", "name": spec["name"],
                                "kind": "branch", "parent_id": spec["parent_id"],
                                "category": category})

        sizes = self._branch_sizes(branch_orgs, n_members)
        groups: list[dict[str, Any]] = []
        branch_groups: list[list[str]] = []
        for org, size in zip(branch_orgs, sizes):
            ids: list[str] = []
            if size > GROUPS_ABOVE:
                n_groups = min(4, max(2, size // 12 + rng.randint(0, 1)))
                for k in range(n_groups):
                    gid = f"g{org['org_id'][1:]}-{k + 1}"
                    groups.append({"org_id": gid, "name": f"{org['name']}第{_ordinal(k + 1)}党小组",
                                   "kind": "group", "parent_id": org["org_id"]})
                    ids.append(gid)
            branch_groups.append(ids)

        member_rows = self._members(branch_orgs, sizes, branch_groups, locations, n_members)
        for town in towns:
            del town["_place"]
        organizations = [county, *towns, *general_branches, *branch_orgs, *groups]
        return County(organizations=organizations, members=member_rows)

    def _general_branch_plans(self, per_town: list[int], pool: dict[str, int]) -> list[tuple[int, str, int]]:
        """About GENERAL_BRANCH_SHARE of branches grouped 2-4 under a 党总支 of one category."""
        rng = self.rng
        target = round(GENERAL_BRANCH_SHARE * sum(per_town))
        free = list(per_town)
        plans: list[tuple[int, str, int]] = []
        placed = 0
        attempts = 0
        while target - placed >= 2 and attempts < 1000:
            attempts += 1
            size = min(rng.randint(2, 4), target - placed)
            if target - placed - size == 1:
                size = size - 1 if size > 2 else size + 1
            towns = [t for t, n in enumerate(free) if n >= size]
            cats = [c for c in _GENERAL_BRANCH_CATEGORIES if pool[c] >= size]
            if not towns or not cats:
                if size == 2:
                    break
                continue
            town = _weighted_choice(rng, towns, [free[t] for t in towns])
            category = _weighted_choice(rng, cats, [pool[c] for c in cats])
            plans.append((town, category, size))
            free[town] -= size
            pool[category] -= size
            placed += size
        return plans

    def _branch_sizes(self, branch_orgs: list[dict[str, Any]], n_members: int) -> list[int]:
        """Exactly n_members over the branches; size varies by category, at least 3 each."""
        if not branch_orgs:
            return []
        floor = min(MIN_BRANCH_SIZE, n_members // len(branch_orgs))
        weights = [_CATEGORY_SIZE[o["category"]] * self.rng.gammavariate(3.0, 1 / 3.0)
                   for o in branch_orgs]
        extra = _allocate(n_members - floor * len(branch_orgs), weights)
        return [floor + e for e in extra]

    # -- names -----------------------------------------------------------------------------
    def _place(self) -> str:
        rng = self.rng
        return rng.choice(_PLACE_FIRST) + rng.choice(_PLACE_SECOND)

    def _township_names(self, n: int) -> list[str]:
        names: list[str] = []
        seen: set[str] = set()
        if n:
            names.append("城关镇")
            seen.add("城关")
        while len(names) < n:
            place = self._place()
            if place in seen and len(seen) < len(_PLACE_FIRST) * len(_PLACE_SECOND):
                continue
            seen.add(place)
            names.append(place + ("镇" if self.rng.random() < 0.7 else "乡"))
        return names

    def _base_name(self, category: str, town: str, destination: str = "") -> str:
        """A county-unique organization base name ("青山镇石桥村"), without 党支部/党总支."""
        rng = self.rng
        base = ""
        for _ in range(30):
            if category == "village":
                base = f"{town}{self._place()}村"
            elif category == "community":
                base = f"{rng.choice(_COMMUNITY_NAMES + (self._place(),))}社区"
            elif category == "enterprise":
                suffix = "股份有限公司" if rng.random() < 0.15 else "有限公司"
                base = f"{self._place()}{rng.choice(_INDUSTRIES)}{suffix}"
            elif category == "institution":
                base = f"{town}{rng.choice(_INSTITUTIONS)}"
            elif category == "school":
                base = f"{town}{rng.choice(_SCHOOLS)}"
            elif category == "social_org":
                base = f"{town}{rng.choice(_SOCIAL_ORGS)}"
            elif category == "mobile":
                city = (destination or self._destination()).split("省")[-1].rstrip("市")
                base = f"{town}驻{city}流动党员"
            else:
                base = f"{town}{self._place()}"
            if base not in self.used_bases:
                break
        n = 1
        candidate = base
        while candidate in self.used_bases:   # small counties can run out of variants
            n += 1
            candidate = f"{base}{n}"
        self.used_bases.add(candidate)
        return candidate

    def _destination(self) -> str:
        return _weighted_pick(self.rng, self.dest_names, self.dest_cum)

    # -- members ---------------------------------------------------------------------------
    def _members(self, branch_orgs, sizes, branch_groups, locations, n_members) -> list[dict[str, Any]]:
        rng = self.rng
        width_m = max(6, len(str(n_members)))
        phones: set[str] = set()
        rows: list[dict[str, Any]] = []
        committee_ids: set[int] = set()
        mobile_branch_rows: list[int] = []
        other_rows: list[int] = []
        formal_rows: list[int] = []
        probation_start = LATEST_JOIN - dt.timedelta(days=PROBATION_DAYS)
        formal_span = (probation_start - EARLIEST_JOIN).days

        for org, size, group_ids, location in zip(branch_orgs, sizes, branch_groups, locations):
            first = len(rows)
            # Balanced group assignment for most members of a grouped branch.
            assigned = []
            if group_ids:
                n_grouped = round(size * GROUPED_SHARE)
                assigned = [group_ids[i % len(group_ids)] for i in range(n_grouped)]
                assigned += [None] * (size - n_grouped)
                rng.shuffle(assigned)
            for i in range(size):
                index = len(rows)
                surname, surname_py, _ = _weighted_pick(rng, self.surnames, self.surname_cum)
                given = rng.sample(_GIVEN, 1 if rng.random() < 0.25 else 2)
                probationary = rng.random() < PROBATIONARY_SHARE
                if probationary:
                    joined = probation_start + dt.timedelta(days=rng.randint(1, PROBATION_DAYS))
                else:
                    offset = int(rng.triangular(0, formal_span, formal_span * 0.7))
                    joined = EARLIEST_JOIN + dt.timedelta(days=offset)
                row: dict[str, Any] = {
                    "member_id": f"m{index + 1:0{width_m}d}",
                    "name": surname + "".join(c for c, _ in given),
                    "branch_id": org["org_id"],
                }
                if assigned and assigned[i]:
                    row["group_id"] = assigned[i]
                row["status"] = "probationary" if probationary else "formal"
                row["mobile"] = location is not None
                if location is not None:
                    row["mobile_location"] = location
                row["committee_member"] = False
                row["no_vote"] = False
                row["phone"] = self._phone(phones)
                if rng.random() < EMAIL_SHARE:
                    local = surname_py + "".join(p for _, p in given)
                    row["email"] = f"{local}{index + 1}@{rng.choice(_EMAIL_DOMAINS)}"
                row["joined_on"] = joined.isoformat()
                rows.append(row)
                (mobile_branch_rows if location else other_rows).append(index)
                if not probationary:
                    formal_rows.append(index)

            formal_here = [j for j in range(first, len(rows)) if rows[j]["status"] == "formal"]
            if size >= COMMITTEE_MIN_BRANCH_SIZE:
                n_committee = min(rng.randint(3, 5), len(formal_here))
                for j in rng.sample(formal_here, n_committee):
                    rows[j]["committee_member"] = True
                    committee_ids.add(j)

        # Mobile members outside the mobile branches, up to about MOBILE_SHARE overall.
        extra_mobile = max(0, round(MOBILE_SHARE * n_members) - len(mobile_branch_rows))
        candidates = [j for j in other_rows if j not in committee_ids]
        for j in rng.sample(candidates, min(extra_mobile, len(candidates))):
            rows[j]["mobile"] = True
            rows[j] = _with_location(rows[j], self._destination())

        eligible = [j for j in formal_rows if j not in committee_ids]
        for j in rng.sample(eligible, min(round(NO_VOTE_SHARE * n_members), len(eligible))):
            rows[j]["no_vote"] = True
        return rows

    def _phone(self, taken: set[str]) -> str:
        rng = self.rng
        while True:
            phone = f"{rng.choice(_PHONE_PREFIXES)}{rng.randrange(_PHONE_SUFFIXES):08d}"
            if phone not in taken:
                taken.add(phone)
                return phone


def _with_location(row: dict[str, Any], location: str) -> dict[str, Any]:
    """Insert mobile_location right after mobile, keeping the SPEC field order."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        out[key] = value
        if key == "mobile":
            out["mobile_location"] = location
    return out


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` proportionally to `weights` into integers summing exactly to `total`."""
    if not weights:
        return []
    wsum = sum(weights)
    raw = [total * w / wsum for w in weights]
    counts = [int(r) for r in raw]
    short = total - sum(counts)
    order = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[:short]:
        counts[i] += 1
    return counts


def _cumulative(weights) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return out


def _weighted_pick(rng: random.Random, items, cumulative: list[float]):
    from bisect import bisect_right
    return items[bisect_right(cumulative, rng.random() * cumulative[-1])]


def _weighted_choice(rng: random.Random, items, weights):
    return _weighted_pick(rng, items, _cumulative(weights))


def _ordinal(n: int) -> str:
    if n <= 10:
        return _ORDINALS[n - 1]
    if n < 20:
        return "十" + _ORDINALS[n - 11]
    return str(n)


def _default_townships(branches: int) -> int:
    return max(1, round(branches / 80)) if branches >= 160 else max(1, branches // 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a synthetic county (no real personal data).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--members", type=int, default=35000)
    parser.add_argument("--branches", type=int, help="default: 1,600 per 35,000 members")
    parser.add_argument("--townships", type=int, help="default: about 80 branches each, at most 20 for a county")
    parser.add_argument("--county-id", default="county")
    parser.add_argument("--xlsx", type=Path, help="write the members as an office's .xlsx (Chinese headers)")
    parser.add_argument("--json", type=Path, help="write {organizations, members} as JSON")
    parser.add_argument("--branch", help="with --xlsx: put every member in this existing branch "
                                         "(id or name), to try an import on a deployment that "
                                         "does not have the synthetic county's organizations")
    args = parser.parse_args(argv)

    branches = args.branches if args.branches is not None else max(1, round(args.members * 1600 / 35000))
    townships = args.townships if args.townships is not None else min(20, _default_townships(branches))
    started = time.perf_counter()
    county = make_county(args.seed, townships, branches, args.members, args.county_id)
    elapsed = time.perf_counter() - started
    kinds: dict[str, int] = {}
    for org in county.organizations:
        kinds[org["kind"]] = kinds.get(org["kind"], 0) + 1
    print(f"generated {len(county.members)} members, organizations {kinds} in {elapsed:.2f}s")

    if args.json:
        args.json.write_text(json.dumps({"organizations": county.organizations,
                                         "members": county.members}, ensure_ascii=False, indent=1),
                             encoding="utf-8")
        print(f"wrote {args.json}")
    if args.xlsx:
        try:
            from orglife.importfile import write_member_xlsx
        except ImportError:  # running from a checkout without the package installed
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
            from orglife.importfile import write_member_xlsx
        started = time.perf_counter()
        rows = county.members
        if args.branch:
            rows = [{key: value for key, value in member.items() if key != "group_id"}
                    | {"branch_id": args.branch} for member in rows]
        write_member_xlsx(args.xlsx, rows)
        print(f"wrote {args.xlsx} ({len(county.members)} rows) in {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
