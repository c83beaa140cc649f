"""The codes of SPEC §2, shared by every service, the CLI and the schemas."""

ORG_KINDS = ("county", "township", "general_branch", "branch", "group")
# Which kind of organization each kind hangs under (None: a root).
ORG_PARENT_KINDS = {
    "county": (None,),
    "township": ("county",),
    "general_branch": ("township",),
    "branch": ("township", "general_branch"),
    "group": ("branch",),
}
BRANCH_CATEGORIES = (
    "village", "community", "enterprise", "institution", "school", "social_org", "mobile", "other",
)
ACTIVE_STATUSES = ("formal", "probationary")
ARCHIVED_STATUSES = ("transferred_out", "removed", "deceased")
MEMBER_STATUSES = ACTIVE_STATUSES + ARCHIVED_STATUSES

MEETING_TYPES = (
    "branch_assembly", "committee", "group", "lecture", "theme_day", "org_life",
    "democratic_review", "study",
)
ACTIVITY_KINDS = ("household_visit", "volunteer", "heart_talk")
ATTENDANCE_STATUSES = ("present", "leave", "absent")

# The Chinese names of the codes, for the people who read tables (county office staff).
# Keyed by domain first, because one code can mean different things in different domains:
# `group` is a 党小组 (org kind) or a 党小组会 (meeting type), `review` a recommendation
# (重新审查) or an at-risk level (提请审议). `label(code, domain)` names the domain.
# Domains: org_kind, category, member_status, meeting_type, activity_kind, attendance (SPEC §2);
# grade, recommendation, light, risk_level (SPEC §3: scores, lights and at-risk alerts);
# notification_kind, channel, notification_status (SPEC §4 notifications).
LABELS: dict[str, dict[str, str]] = {
    "org_kind": {
        "county": "县委", "township": "乡镇党委", "general_branch": "党总支", "branch": "党支部",
        "group": "党小组",
    },
    "category": {
        "village": "村", "community": "社区", "enterprise": "非公企业",
        "institution": "机关事业单位", "school": "学校", "social_org": "社会组织",
        "mobile": "流动党员党支部", "other": "其他",
    },
    "member_status": {
        "formal": "正式党员", "probationary": "预备党员", "transferred_out": "已转出",
        "removed": "已除名", "deceased": "已去世",
    },
    "meeting_type": {
        "branch_assembly": "支部党员大会", "committee": "支部委员会", "group": "党小组会",
        "lecture": "党课", "theme_day": "主题党日", "org_life": "组织生活会",
        "democratic_review": "民主评议党员", "study": "集中学习",
    },
    "activity_kind": {
        "household_visit": "走访联系户", "volunteer": "志愿服务", "heart_talk": "谈心谈话",
    },
    "attendance": {"present": "出席", "leave": "请假", "absent": "缺席"},
    "grade": {
        "excellent": "优秀", "qualified": "合格", "basic": "基本合格", "unqualified": "不合格",
    },
    "recommendation": {"confirm": "按期转正", "extend": "延长预备期", "review": "重新审查"},
    "light": {"red": "红灯", "yellow": "黄灯", "green": "绿灯"},
    "risk_level": {"notice": "提醒", "alert": "预警", "review": "提请审议"},
    "notification_kind": {
        "meeting_reminder": "会前提醒", "absence_followup": "缺席跟进", "absence_digest": "缺席汇总",
        "due_soon": "事前提醒", "branch_overdue": "逾期未开", "branch_silent": "长期未活动",
        "member_at_risk": "党员预警", "grade_notice": "年度评定",
    },
    "channel": {"email": "邮件", "sms": "短信", "robot": "工作群机器人", "in_app": "站内"},
    "notification_status": {
        "pending": "待发", "sending": "发送中", "delivered": "已送达", "failed": "失败",
        "unknown": "结果不明", "withdrawn": "已撤回",
    },
}


def label(code: str, domain: str | None = None) -> str:
    """A code as tables show it, `code 中文`; the code alone when it has no Chinese name.

    Without a domain a code that two domains name differently (`group`, `review`) stays bare:
    pass the domain. An unknown domain is a KeyError (a typo in the caller, not data).
    """
    if domain is not None:
        name = LABELS[domain].get(code)
    else:
        names = {labels[code] for labels in LABELS.values() if code in labels}
        name = names.pop() if len(names) == 1 else None
    return f"{code} {name}" if name else code


def period_zh(period: str | None) -> str:
    """A period label in Chinese: `2026-Q1` → 2026年第1季度, `2026-03` → 2026年3月,
    `2026` → 2026年 (the CLI's tables and the dashboard say it the same way)."""
    if not period:
        return ""
    year, _, rest = period.partition("-")
    if not rest:
        return f"{year}年"
    if rest.upper().startswith("Q"):
        return f"{year}年第{rest[1:]}季度"
    return f"{year}年{int(rest)}月" if rest.isdigit() else period

