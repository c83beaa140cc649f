"""The demo county of `./orglife demo`: deterministic, invented, shaped like the source document.

A few townships; the first one is shaped like the township of the source report (seed/*.txt):
38 Party organizations across villages, communities and private (non-public) enterprises, some
mobile members (流动党员) working elsewhere and attending remotely, organization life uneven by
category (villages fair, communities good, enterprises poor), one branch gone silent since
August, a few members drifting away for three to six months, and 365 cadres who visit 1,795
contact households over the year (走访联系户, as `household_visit` activities). The other
townships mix every branch category (institutions, schools, social organizations, a mobile
members' branch).

Everything comes from one seeded `random.Random`: a seed always gives the same county, the same
ids and the same year of meetings, whatever the day it is generated on (the caller keeps the
meetings already held by its clock), so running the demo again reports exactly the same
records. Names, phone numbers and addresses are invented; e-mail addresses use the reserved
example.com/.net/.org domains. (bench/synthetic.py builds the benchmarks' full-size county the
same way; this module stands alone so that the demo also works where bench/ is not installed.)
"""
from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

SEED = 2026
COUNTY_ID = "c-demo"
COUNTY_NAME = "清河县委"
MAX_TOWNSHIPS = 8

# The source township (seed document): 38 organizations across villages, communities and
# private enterprises; 365 cadres visiting 1,795 contact households.
SOURCE_SHAPE = {"village": 24, "community": 6, "enterprise": 8}
SOURCE_CADRES = 365
SOURCE_HOUSEHOLDS = 1795
# The other townships, in order (cycled beyond the list).
OTHER_SHAPES = (
    {"village": 11, "community": 3, "enterprise": 3, "institution": 2, "school": 1, "mobile": 1},
    {"village": 10, "community": 2, "enterprise": 4, "institution": 2, "social_org": 1},
    {"village": 13, "community": 1, "enterprise": 2, "institution": 1, "school": 1},
    {"village": 8, "community": 5, "enterprise": 5, "institution": 2, "social_org": 1,
     "mobile": 1},
)
TOWNSHIP_NAMES = ("石桥镇", "青山乡", "白龙镇", "桃源镇", "柳河乡", "金沙镇", "松岭乡", "梅花镇")
MOBILE_CITIES = ("广东省深圳市", "浙江省杭州市", "上海市", "江苏省苏州市", "广东省东莞市")

# Members per branch, by category (a mean; each branch varies around it).
BRANCH_SIZE = {"village": 25, "community": 21, "enterprise": 9, "institution": 18,
               "school": 14, "social_org": 7, "mobile": 12}
# Share of the meetings a branch owes that it skips, by category: the source's unevenness
# (非公企业 "重视不足, 日常无暇开展"; mobile members hard to gather). Scaled per branch.
SKIP = {"village": 0.10, "community": 0.05, "enterprise": 0.38, "institution": 0.03,
        "school": 0.06, "social_org": 0.30, "mobile": 0.32}
# How many members are present at a meeting, by category (the rest on leave or absent).
PRESENT = {"village": 0.86, "community": 0.90, "enterprise": 0.74, "institution": 0.94,
           "school": 0.92, "social_org": 0.78, "mobile": 0.70}
GROUPS_ABOVE = 15            # branches larger than this have 2-3 党小组
COMMITTEE_FROM = 7           # 2018 regulations: a branch committee from 7 members up
PROBATIONARY_SHARE = 0.06
MOBILE_SHARE_VILLAGE = 0.09  # village members working elsewhere (外出务工的流动党员)
PHONE_SHARE = 0.90
EMAIL_SHARE = 0.35
NO_CONTACT_SHARE = 0.05      # neither phone nor e-mail: told in-app, and their secretary is told
SILENT_AFTER = (8, 16)       # (month, day): the silent branch holds nothing after this
# Drifting members: from this month on they miss every meeting (by the end of October: 6, 5,
# 4 and 3 missed months, i.e. review, alert, notice, notice).
DRIFT_STARTS = (5, 6, 7, 8)

TOPICS = {
    "branch_assembly": ("讨论发展党员工作", "通报上半年支部工作", "选举支部委员会委员",
                        "讨论村级重大事项（四议两公开）", "审议党费收缴情况"),
    "committee": ("研究本月党建工作安排", "研究联系户走访安排", "研究困难党员帮扶",
                  "研究发展对象培养考察", "研究为民办实事项目进度"),
    "group": ("学习党章第一章", "交流岗位工作体会", "讨论联系户反映的问题", "学习新修订的条例",
              "开展批评与自我批评"),
    "lecture": ("党课：发挥党员先锋模范作用", "党课：学习贯彻党的二十届四中全会精神",
                "党课：新时代基层党组织建设", "党课：密切联系群众"),
    "theme_day": ("主题党日：清理村内卫生死角", "主题党日：走访慰问困难群众",
                  "主题党日：政策宣讲进农户", "主题党日：参观红色教育基地",
                  "主题党日：义务植树", "主题党日：重温入党誓词"),
    "org_life": ("年度组织生活会：对照检查、批评与自我批评",),
    "democratic_review": ("民主评议党员",),
    "study": ("集中学习上级文件精神", "集中学习《中国共产党章程》", "集中学习省党代会精神",
              "集中学习乡村振兴政策", "集中学习安全生产知识"),
}
OPINIONS = ("反映村道路灯损坏，希望尽快维修", "希望增加医保政策宣传", "建议修缮村口水渠",
            "反映饮水管道老化", "希望组织农技培训", "建议增设垃圾收集点", "无意见，对工作表示满意",
            "希望帮助联系务工信息", "反映低保申请进度", "建议整治河道")
VOLUNTEER = ("参加义务清扫", "参加防汛值守", "为老人义务理发", "参加交通文明劝导",
             "参加森林防火巡查", "参加献血")

_SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("林", "lin"),
    ("高", "gao"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"), ("彭", "peng"),
    ("曾", "zeng"), ("田", "tian"), ("董", "dong"), ("袁", "yuan"), ("潘", "pan"), ("蒋", "jiang"),
)
_SURNAME_WEIGHTS = (71, 70, 67, 54, 45, 31, 22, 20, 20, 19, 13, 13, 11, 11, 10, 10, 9, 9, 9, 9,
                    8, 7, 6, 6, 6, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4)
_GIVEN = tuple(pair.split(":") for pair in (
    "建:jian 国:guo 华:hua 明:ming 军:jun 伟:wei 芳:fang 秀:xiu 英:ying 丽:li 敏:min 强:qiang "
    "磊:lei 勇:yong 艳:yan 杰:jie 娟:juan 涛:tao 霞:xia 平:ping 刚:gang 桂:gui 兰:lan 红:hong "
    "玉:yu 梅:mei 鹏:peng 辉:hui 波:bo 海:hai 峰:feng 春:chun 燕:yan 琴:qin 云:yun 文:wen "
    "德:de 志:zhi 忠:zhong 福:fu 荣:rong 庆:qing 生:sheng 成:cheng 金:jin 山:shan 东:dong "
    "晓:xiao 静:jing 婷:ting 新:xin 永:yong 学:xue 宏:hong 振:zhen 安:an 利:li 玲:ling 萍:ping "
    "浩:hao 宇:yu 佳:jia 斌:bin 亮:liang 瑞:rui 祥:xiang 兵:bing 卫:wei 民:min 秋:qiu 菊:ju"
).split())
_PLACE_FIRST = "青石白龙凤黄新大东西南北金马桃柳杨梅花清安永长平兴福高双红松竹兰桂茶枫沙泉田河湖岩鹤云"
_PLACE_SECOND = "山桥河溪岭坪湖田塘口坝沟林泉台湾洲岗冲铺集店庄寨营堡屯园坡"
_COMMUNITIES = ("城东", "城西", "城南", "城北", "建设路", "人民路", "解放路", "幸福里", "和平",
                "文化路", "新华", "东风", "胜利", "光明", "朝阳", "滨江", "站前", "锦绣")
_INDUSTRIES = ("建材", "农业科技", "食品", "纺织", "机械制造", "物流", "电子科技", "茶业",
               "新能源", "建筑工程", "服装", "米业", "家具", "水泥")
_INSTITUTIONS = ("机关", "卫生院", "农业农村服务中心", "财政所", "司法所", "文化站")
_SCHOOLS = ("中心小学", "中学", "中心幼儿园")
_SOCIAL_ORGS = ("商会", "老年协会", "志愿者协会", "种植协会")
_DESTINATIONS = ("广东省深圳市", "广东省广州市", "广东省东莞市", "浙江省杭州市", "江苏省苏州市",
                 "上海市", "北京市", "福建省厦门市", "湖北省武汉市", "四川省成都市")
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
_PHONE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151",
                   "152", "155", "158", "159", "177", "180", "186", "187", "188", "189", "199")


@dataclass
class DemoCounty:
    """What the demo registers and reports. Organizations are parents first (registration
    payloads, without secretary or robot: those are set once the members exist)."""

    year: int
    organizations: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    secretaries: dict[str, str] = field(default_factory=dict)  # org_id → member_id
    townships: list[str] = field(default_factory=list)
    source_township: str = ""
    silent_branch: str = ""
    drifting: dict[str, int] = field(default_factory=dict)  # member_id → month drift began
    cadres: list[str] = field(default_factory=list)
    meetings: list[dict[str, Any]] = field(default_factory=list)  # the whole year, by held_at
    activities: list[dict[str, Any]] = field(default_factory=list)  # the whole year, by held_at

    @property
    def branches(self) -> list[dict[str, Any]]:
        return [org for org in self.organizations if org["kind"] == "branch"]

    def org(self, org_id: str) -> dict[str, Any]:
        return next(org for org in self.organizations if org["org_id"] == org_id)

    def held_by(self, moment: dt.datetime) -> tuple[list[dict], list[dict]]:
        """The meetings and activities held by `moment` (naive, county time)."""
        return ([m for m in self.meetings if _at(m["held_at"]) <= moment],
                [a for a in self.activities if _at(a["held_at"]) <= moment])


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def make_demo_county(year: int, townships: int = 5, seed: int = SEED) -> DemoCounty:
    """The demo county and its whole year of organization life (January to December of `year`;
    the caller reports what was held by its clock)."""
    if not 1 <= townships <= MAX_TOWNSHIPS:
        raise ValueError(f"townships must be 1 to {MAX_TOWNSHIPS}")
    return _Builder(random.Random(f"{seed}:{year}:{townships}"), year).build(townships)


class _Builder:
    def __init__(self, rng: random.Random, year: int):
        self.rng = rng
        self.year = year
        self.county = DemoCounty(year=year)
        self.used_names: set[str] = set()
        self.phones: set[str] = set()
        self.category: dict[str, str] = {}
        self.location: dict[str, str | None] = {}  # mobile branch → its city
        self.groups: dict[str, list[str]] = defaultdict(list)
        self.roster: dict[str, list[dict]] = defaultdict(list)
        self.township_of: dict[str, str] = {}
        self.quality: dict[str, tuple[float, float]] = {}  # branch → (skip, present)

    # -- structure ---------------------------------------------------------------------------
    def build(self, n_townships: int) -> DemoCounty:
        county = self.county
        county.organizations.append({"org_id": COUNTY_ID, "name": COUNTY_NAME,
                                     "kind": "county", "parent_id": None})
        for index in range(n_townships):
            shape = SOURCE_SHAPE if index == 0 else OTHER_SHAPES[(index - 1) % len(OTHER_SHAPES)]
            self._township(index, shape)
        county.source_township = county.townships[0]
        self._members()
        self._roles()
        self._meetings()
        self._activities()
        county.meetings.sort(key=lambda m: (m["held_at"], m["meeting_id"]))
        county.activities.sort(key=lambda a: (a["held_at"], a["activity_id"]))
        return county

    def _township(self, index: int, shape: dict[str, int]) -> None:
        rng, county = self.rng, self.county
        township_id = f"demo-t{index + 1}"
        name = TOWNSHIP_NAMES[index % len(TOWNSHIP_NAMES)]
        if index >= len(TOWNSHIP_NAMES):
            name = f"{name[:-1]}{index // len(TOWNSHIP_NAMES) + 1}{name[-1]}"
        place = name[:-1]
        county.townships.append(township_id)
        county.organizations.append({"org_id": township_id, "name": f"{name}党委",
                                     "kind": "township", "parent_id": COUNTY_ID})
        categories = [c for c, n in shape.items() for _ in range(n)]
        rng.shuffle(categories)
        # Villages first in the listing, as a township's own roll would have them.
        categories.sort(key=lambda c: list(BRANCH_SIZE).index(c))
        # The second township has a 党总支 over three of its villages.
        general = None
        if index == 1:
            general = f"demo-gb{index + 1}-1"
            county.organizations.append({"org_id": general, "name": f"{place}{self._place()}村党总支",
                                         "kind": "general_branch", "parent_id": township_id})
        for category in categories:
            number = sum(1 for org in county.organizations if org["kind"] == "branch") + 1
            branch_id = f"demo-b{number:03d}"
            parent = township_id
            if general and category == "village" and \
                    sum(1 for o in county.organizations if o.get("parent_id") == general) < 3:
                parent = general
            city = None
            if category == "mobile":
                city = MOBILE_CITIES[index % len(MOBILE_CITIES)]
            branch = {"org_id": branch_id, "name": self._branch_name(category, place, city),
                      "kind": "branch", "parent_id": parent, "category": category}
            county.organizations.append(branch)
            self.category[branch_id] = category
            self.location[branch_id] = city
            self.township_of[branch_id] = township_id
            # Each branch's own habits: some do far better or worse than their category.
            factor = rng.uniform(0.2, 1.9)
            skip = min(0.85, SKIP[category] * factor)
            present = min(0.97, max(0.5, PRESENT[category] + rng.uniform(-0.08, 0.06)))
            if index == 0 and category == "enterprise":
                skip = min(0.85, skip * 1.25)  # the source: enterprises pay it little attention
            self.quality[branch_id] = (skip, present)
        if index == 0:
            enterprises = [o["org_id"] for o in county.organizations
                           if self.category.get(o["org_id"]) == "enterprise"
                           and self.township_of.get(o["org_id"]) == township_id]
            county.silent_branch = enterprises[len(enterprises) // 2]

    def _branch_name(self, category: str, place: str, city: str | None) -> str:
        rng = self.rng
        for attempt in range(50):
            if category == "village":
                base = f"{self._place()}村"
            elif category == "community":
                base = f"{place}{rng.choice(_COMMUNITIES)}社区"
            elif category == "enterprise":
                base = f"{self._place()}{rng.choice(_INDUSTRIES)}有限公司"
            elif category == "institution":
                base = f"{place}镇{rng.choice(_INSTITUTIONS)}" if attempt < 10 else \
                    f"{place}{self._place()}站"
            elif category == "school":
                base = f"{place}{rng.choice(_SCHOOLS)}"
            elif category == "social_org":
                base = f"{place}{rng.choice(_SOCIAL_ORGS)}"
            else:
                base = f"{place}驻{city.split('省')[-1].rstrip('市')}流动党员"
            name = f"{base}党支部"
            if name not in self.used_names:
                self.used_names.add(name)
                return name
        name = f"{base}{len(self.used_names)}党支部"
        self.used_names.add(name)
        return name

    def _place(self) -> str:
        return self.rng.choice(_PLACE_FIRST) + self.rng.choice(_PLACE_SECOND)

    # -- members ---------------------------------------------------------------------------------
    def _members(self) -> None:
        rng, county = self.rng, self.county
        serial = 0
        for branch in county.branches:
            branch_id, category = branch["org_id"], self.category[branch["org_id"]]
            size = max(3, round(BRANCH_SIZE[category] * rng.uniform(0.6, 1.4)))
            group_ids = []
            if size > GROUPS_ABOVE:
                for k in range(2 if size < 26 else 3):
                    group_id = f"demo-g{branch_id[6:]}-{k + 1}"
                    county.organizations.append({
                        "org_id": group_id, "name": f"{branch['name'][:-3]}第{'一二三'[k]}党小组",
                        "kind": "group", "parent_id": branch_id})
                    group_ids.append(group_id)
                    self.groups[branch_id].append(group_id)
            for i in range(size):
                serial += 1
                member = self._person(f"demo-m{serial:04d}", branch_id, category)
                if group_ids and rng.random() < 0.95:
                    member["group_id"] = group_ids[i % len(group_ids)]
                county.members.append(member)
                self.roster[branch_id].append(member)
            formal = [m for m in self.roster[branch_id] if m["status"] == "formal"]
            if size >= COMMITTEE_FROM:
                for member in rng.sample(formal, min(len(formal), rng.randint(3, 5))):
                    member["committee_member"] = True
            if formal and size >= 12 and rng.random() < 0.2:
                candidates = [m for m in formal if not m["committee_member"]]
                if candidates:
                    rng.choice(candidates)["no_vote"] = True

    def _person(self, member_id: str, branch_id: str, category: str) -> dict:
        rng, year = self.rng, self.year
        surname, surname_py = rng.choices(_SURNAMES, weights=_SURNAME_WEIGHTS)[0]
        given = rng.sample(_GIVEN, 1 if rng.random() < 0.25 else 2)
        probationary = rng.random() < PROBATIONARY_SHARE
        if probationary:  # joined within the last year: some during this one
            start = dt.date(year - 1, 11, 1)
            joined = start + dt.timedelta(days=rng.randint(0, 330))
        else:
            joined = dt.date(rng.randint(1968, year - 2), rng.randint(1, 12), rng.randint(1, 28))
        city = self.location[branch_id]
        mobile = city is not None or (category == "village"
                                      and rng.random() < MOBILE_SHARE_VILLAGE)
        member = {"member_id": member_id, "name": surname + "".join(c for c, _ in given),
                  "branch_id": branch_id, "group_id": None,
                  "status": "probationary" if probationary else "formal",
                  "mobile": mobile, "mobile_location": (city or rng.choice(_DESTINATIONS))
                  if mobile else None,
                  "committee_member": False, "no_vote": False, "phone": None, "email": None,
                  "joined_on": joined.isoformat()}
        if rng.random() >= NO_CONTACT_SHARE or category not in ("village", "community"):
            if rng.random() < PHONE_SHARE:
                member["phone"] = self._phone()
            if rng.random() < EMAIL_SHARE or member["phone"] is None:
                member["email"] = self._email(surname_py, given, member_id)
        return member

    def _phone(self) -> str:
        while True:
            phone = f"{self.rng.choice(_PHONE_PREFIXES)}{self.rng.randrange(10 ** 8):08d}"
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def _email(self, surname_py: str, given, member_id: str) -> str:
        local = surname_py + "".join(p for _, p in given)
        return f"{local}{int(member_id[6:])}@{self.rng.choice(_EMAIL_DOMAINS)}"

    # -- who does what ----------------------------------------------------------------------------
    def _roles(self) -> None:
        """Secretaries, township officers, drifting members and cadres."""
        rng, county = self.rng, self.county
        for branch in county.branches:
            roster = self.roster[branch["org_id"]]
            committee = [m for m in roster if m["committee_member"]]
            formal = [m for m in roster if m["status"] == "formal"]
            secretary = (committee or formal or roster)[0]
            self._reachable(secretary)
            county.secretaries[branch["org_id"]] = secretary["member_id"]
        for township_id in county.townships:
            # The officer receiving the township's alerts: a committee member of one of its
            # communities or institutions (the township's own organs), else of any branch.
            mine = [b["org_id"] for b in county.branches
                    if self.township_of[b["org_id"]] == township_id]
            preferred = [b for b in mine if self.category[b] in ("institution", "community")]
            for branch_id in preferred + mine:
                committee = [m for m in self.roster[branch_id] if m["committee_member"]
                             and m["member_id"] != county.secretaries[branch_id]]
                if committee:
                    officer = committee[0]
                    break
            else:
                officer = self.roster[mine[0]][0]
            self._reachable(officer)
            county.secretaries[township_id] = officer["member_id"]
        busy = set(county.secretaries.values())
        # Drifting members: two per start month in the source township, one or two in the
        # others; never a secretary, officer or committee member, nor the silent branch's.
        for township_id in county.townships:
            source = township_id == county.source_township
            pool = [m for m in county.members
                    if self.township_of[m["branch_id"]] == township_id
                    and m["member_id"] not in busy and not m["committee_member"]
                    and m["status"] == "formal" and m["branch_id"] != county.silent_branch]
            starts = [s for s in DRIFT_STARTS for _ in range(2)] if source else \
                rng.sample(DRIFT_STARTS, 2)
            for start, member in zip(starts, rng.sample(pool, min(len(pool), len(starts)))):
                county.drifting[member["member_id"]] = start
        # The source township's cadres (党员干部): committee members first, then others.
        source = [m for m in county.members
                  if self.township_of[m["branch_id"]] == county.source_township
                  and m["status"] == "formal" and not m["mobile"]
                  and m["member_id"] not in county.drifting
                  and m["branch_id"] != county.silent_branch]
        source.sort(key=lambda m: (not m["committee_member"], m["member_id"]))
        first = source[:SOURCE_CADRES // 2]
        rest = source[SOURCE_CADRES // 2:]
        cadres = first + rng.sample(rest, min(len(rest), SOURCE_CADRES - len(first)))
        county.cadres = sorted(m["member_id"] for m in cadres)

    def _reachable(self, member: dict) -> None:
        """Secretaries and officers have a phone and an e-mail address."""
        if member["phone"] is None:
            member["phone"] = self._phone()
        if member["email"] is None:
            member["email"] = f"shuji{int(member['member_id'][6:])}@example.org"

    # -- meetings ------------------------------------------------------------------------------
    def _meetings(self) -> None:
        rng, county, year = self.rng, self.county, self.year
        silent_until = dt.datetime(year, *SILENT_AFTER, 23, 59)
        mobile_branches = {self.location[b["org_id"]]: b["org_id"] for b in county.branches
                           if self.category[b["org_id"]] == "mobile"}
        for branch in county.branches:
            branch_id = branch["org_id"]
            category = self.category[branch_id]
            skip, present = self.quality[branch_id]
            roster = self.roster[branch_id]
            committee = [m for m in roster if m["committee_member"]]
            plan: list[tuple[str, int, str | None]] = []
            for quarter in range(4):
                plan.append(("branch_assembly", quarter * 3 + rng.randint(1, 3), None))
                plan.append(("lecture", quarter * 3 + rng.randint(1, 3), None))
            plan += [("theme_day", month, None) for month in range(1, 13)]
            plan += [("study", month, None) for month in range(1, 13) if rng.random() < 0.7]
            life = rng.choice((1, 2, 2, 3, 12))  # 组织生活会 and 民主评议: early in the year
            plan += [("org_life", life, None), ("democratic_review", life, None)]
            if committee:
                plan += [("committee", month, None) for month in range(1, 13)]
                plan += [("committee", month, None) for month in range(1, 13)
                         if rng.random() < 0.4]
            for group_id in self.groups[branch_id]:
                plan += [("group", month, group_id) for month in range(1, 13)]
            serial: dict[str, int] = defaultdict(int)
            for meeting_type, month, group_id in plan:
                # November's theme day is held by everyone but the silent branch (so that only
                # the silent branch is silent); anything else may be skipped.
                keep_anyway = meeting_type == "theme_day" and month == 11
                if rng.random() < skip and not keep_anyway:
                    continue
                day = rng.randint(1, 20 if keep_anyway else 28)
                hour = rng.choice((12, 18) if category == "enterprise" else (9, 14, 19))
                held = dt.datetime(year, month, day, hour, 30)
                if branch_id == county.silent_branch and held > silent_until:
                    continue
                if meeting_type == "committee":
                    expected = committee
                elif meeting_type == "group":
                    expected = [m for m in roster if m["group_id"] == group_id]
                else:
                    expected = roster
                expected = [m for m in expected if dt.date.fromisoformat(m["joined_on"])
                            <= held.date()]
                if not expected:
                    continue
                key = f"{branch_id}-{meeting_type}-{month:02d}"
                if group_id:
                    key += f"-g{group_id.rsplit('-', 1)[1]}"
                serial[key] += 1
                topic = rng.choice(TOPICS[meeting_type])
                report = {
                    "meeting_id": f"{key}-{serial[key]}", "branch_id": branch_id,
                    "group_id": group_id, "type": meeting_type,
                    "held_at": held.isoformat(), "topic": topic,
                    "attendance": [self._attendance(m, held, present) for m in expected],
                }
                if meeting_type in ("theme_day", "org_life", "branch_assembly"):
                    came = sum(1 for a in report["attendance"] if a["status"] == "present")
                    report["minutes"] = (f"应到{len(expected)}人，实到{came}人。"
                                         f"围绕“{topic.split('：')[-1]}”交流发言，形成会议记录。")
                # Mobile members of the county working where a mobile branch meets join it.
                city_branch = mobile_branches.get(self.location.get(branch_id) or "")
                if meeting_type == "theme_day" and category == "mobile" and city_branch:
                    report["attendance"] += self._visitors(branch_id, held)
                county.meetings.append(report)

    def _visitors(self, branch_id: str, held: dt.datetime) -> list[dict]:
        city = self.location[branch_id]
        visitors = [m for m in self.county.members if m["mobile"] and m["branch_id"] != branch_id
                    and m["mobile_location"] == city and m["member_id"] not in self.county.drifting
                    and dt.date.fromisoformat(m["joined_on"]) <= held.date()]
        return [{"member_id": m["member_id"], "status": "present", "remote": False}
                for m in visitors if self.rng.random() < 0.3]

    def _attendance(self, member: dict, held: dt.datetime, present: float) -> dict:
        entry = {"member_id": member["member_id"]}
        drift = self.county.drifting.get(member["member_id"])
        roll = self.rng.random()
        if drift is not None and held.month >= drift:
            return {**entry, "status": "absent", "remote": False}
        if member["mobile"]:
            if roll < present - 0.15:
                return {**entry, "status": "present", "remote": True}
            return {**entry, "status": "leave" if roll < 0.93 else "absent", "remote": False}
        if roll < present:
            return {**entry, "status": "present", "remote": False}
        return {**entry, "status": "leave" if roll < present + (1 - present) * 0.6 else "absent",
                "remote": False}

    # -- activities ----------------------------------------------------------------------------
    def _activities(self) -> None:
        rng, county, year = self.rng, self.county, self.year
        by_id = {m["member_id"]: m for m in county.members}
        # 365 cadres, 1,795 contact households: each cadre visits 4 or 5 households once.
        visits = [5] * (SOURCE_HOUSEHOLDS - 4 * len(county.cadres)) + \
            [4] * (len(county.cadres) - (SOURCE_HOUSEHOLDS - 4 * len(county.cadres)))
        if len(county.cadres) < SOURCE_CADRES:  # a tiny county: fewer visits
            visits = [4] * len(county.cadres)
        serial = 0
        first, last = dt.date(year, 1, 5), dt.date(year, 11, 20)
        span = (last - first).days
        for member_id, count in zip(county.cadres, visits):
            member = by_id[member_id]
            village = self._org_name(member["branch_id"])
            for _ in range(count):
                serial += 1
                day = first + dt.timedelta(days=rng.randint(0, span))
                surname = rng.choices(_SURNAMES, weights=_SURNAME_WEIGHTS)[0][0]
                county.activities.append({
                    "activity_id": f"demo-hv-{serial:04d}", "member_id": member_id,
                    "kind": "household_visit",
                    "held_at": dt.datetime(year, day.month, day.day, rng.choice((9, 15)),
                                           0).isoformat(),
                    "household": f"{village.removesuffix('党支部')}{rng.randint(1, 9)}组{surname}家",
                    "opinions": rng.choice(OPINIONS), "note": "下基层、进万家、促和谐"})
        # Heart-to-heart talks (谈心谈话): each secretary with a member a quarter.
        serial = 0
        for branch in county.branches:
            branch_id = branch["org_id"]
            if branch_id == county.silent_branch:
                continue
            roster = [m for m in self.roster[branch_id] if m["member_id"] not in county.drifting
                      and m["member_id"] != county.secretaries[branch_id]]
            for quarter in range(4):
                if not roster:
                    break
                member = rng.choice(roster)
                held = dt.datetime(year, quarter * 3 + rng.randint(1, 3), rng.randint(1, 28), 16)
                if dt.date.fromisoformat(member["joined_on"]) > held.date():
                    continue
                serial += 1
                county.activities.append({
                    "activity_id": f"demo-ht-{serial:04d}", "member_id": member["member_id"],
                    "kind": "heart_talk", "held_at": held.isoformat(),
                    "note": f"支部书记谈心谈话（{self._name(county.secretaries[branch_id])}）"})
        # Volunteer service: a fifth of the members, once to three times a year.
        serial = 0
        for member in county.members:
            if member["member_id"] in county.drifting or rng.random() > 0.2:
                continue
            joined = dt.date.fromisoformat(member["joined_on"])
            for _ in range(rng.randint(1, 3)):
                held = dt.datetime(year, rng.randint(1, 12), rng.randint(1, 28), 8, 30)
                if held.date() < joined or (member["branch_id"] == county.silent_branch
                                            and held.month > SILENT_AFTER[0]):
                    continue
                serial += 1
                county.activities.append({
                    "activity_id": f"demo-vs-{serial:04d}", "member_id": member["member_id"],
                    "kind": "volunteer", "held_at": held.isoformat(),
                    "note": rng.choice(VOLUNTEER)})

    def _org_name(self, org_id: str) -> str:
        return next(o["name"] for o in self.county.organizations if o["org_id"] == org_id)

    def _name(self, member_id: str) -> str:
        return next(m["name"] for m in self.county.members if m["member_id"] == member_id)
