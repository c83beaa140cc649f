"""What an error page says, in Chinese. The services word their errors in English for the
CLI, logs and peer systems (SPEC §4); the dashboard's users read Chinese, so the details it
shows (which record was not found, which argument is wrong and why) are worded here. A
message this file does not know is shown as the service gave it, after the field's Chinese
name, rather than hidden: it still says what to fix."""
from __future__ import annotations

import re

RECORDS = {"organization": "组织", "member": "党员", "meeting": "会议", "activity": "活动",
           "notification": "通知", "table": "表格", "file": "文件"}
FIELDS = {"year": "年度", "as_of": "截至日期", "member_id": "党员编号", "org_id": "组织编号",
          "branch_id": "支部编号", "table": "表格", "token": "令牌", "next": "跳转地址"}
# marshmallow's messages (its defaults) and the services' own, exactly as they are raised
MESSAGES = {
    "Not a valid integer.": "不是有效的整数",
    "Not a valid date.": "不是有效的日期（应写作 2026-11-20）",
    "Missing data for required field.": "必须填写",
    "Field may not be null.": "不能为空",
    "is in the future": "晚于今天",
    "must be 1 to 64 characters": "应为 1 至 64 个字符",
    "unknown table": "没有这个表格",
    "must be 1 to 64 characters, without '/' or spaces": "应为 1 至 64 个字符，不含“/”和空格",
}
PATTERNS = [
    (re.compile(r"^Must be greater than or equal to (\d+) and less than or equal to (\d+)\.$"),
     "应在 {0} 至 {1} 之间"),
    (re.compile(r"^Length must be between (\d+) and (\d+)\.$"), "长度应为 {0} 至 {1} 个字符"),
    (re.compile(r"^(\S+) is before (\d+)$"), "{0} 早于 {1} 年"),
    (re.compile(r"^(\d+) has not begun \(today is (\S+)\)$"), "{0} 年尚未开始（今天是 {1}）"),
    (re.compile(r"^must be between (\S+) and (\S+)$"), "应在 {0} 至 {1} 之间"),
    (re.compile(r"""^(['"])(.*)\1 is a (\w+), not a branch$"""), "「{1}」不是支部"),
]
# ids are quoted by repr(): '…', or "…" when the id holds a '
NOT_FOUND = re.compile(r"""^(\w+) (['"])(.*)\2 not found$""")


def message(text: str) -> str:
    """One validation message in Chinese (as it came when unknown)."""
    text = str(text)
    if text in MESSAGES:
        return MESSAGES[text]
    for pattern, wording in PATTERNS:
        found = pattern.match(text)
        if found:
            return wording.format(*found.groups())
    return text


def invalid(errors: dict) -> str:
    """A ValidationError's fields and messages: 年度：不是有效的整数；…"""
    return "；".join(f"{FIELDS.get(field, field)}：{'，'.join(message(m) for m in messages)}"
                    for field, messages in sorted(errors.items()))


def not_found(text: str) -> str:
    """`member 'm9' not found` → 党员「m9」不存在."""
    found = NOT_FOUND.match(str(text))
    if found and found.group(1) in RECORDS:
        return f"{RECORDS[found.group(1)]}「{found.group(3)}」不存在"
    return str(text)


# -- why a notification failed or is unknown (notifications' last_error) -------------------------
SENDERS = {"email": "邮件", "sms": "短信", "robot": "工作群机器人",
           "robot dingtalk": "钉钉群机器人", "robot wecom": "企业微信群机器人",
           "robot feishu": "飞书群机器人"}
CHANNELS = {"email": "邮件", "sms": "短信", "robot": "工作群机器人", "in_app": "站内"}
# what a channel says after its label (services/notifications/channels.py), by its start
CHANNEL_REASONS = [
    ("not a valid e-mail address", "邮箱地址无效"),
    ("not a valid phone number", "手机号码无效"),
    ("no robot URL", "未配置群机器人地址"),
    ("not an http(s) robot URL", "群机器人地址不是 http(s) 地址"),
    ("host not allowed", "群机器人地址的主机不在允许范围内"),
    ("connect timeout", "连接超时，未送达"),
    ("not a usable endpoint URL", "接口地址不可用"),
    ("cannot connect", "无法连接，未送达"),
    ("connection lost after sending", "发出后连接中断，可能已送达"),
    ("connection lost while sending the message", "发送时连接中断，可能已送达"),
    ("connection lost before the message was sent", "发出前连接中断，未送达"),
    ("cannot reach the SMTP server", "无法连接邮件服务器，未送达"),
    ("server refused the connection", "邮件服务器拒绝连接"),
    ("rate limit reached, not sent", "达到发送频率上限，未发送"),
]
NO_ANSWER = re.compile(r"^no answer within (\S+) s")
REASONS = [  # the notifications service's own, whole
    (re.compile(r"^the sender stopped while sending; it may have been delivered$"),
     lambda m: "发送过程中发送服务停止，可能已送达"),
    (re.compile(r"^no (\w+) address any more$"),
     lambda m: f"已没有{CHANNELS.get(m.group(1), m.group(1))}地址"),
    (re.compile(r"^(\w+) is not configured here$"),
     lambda m: f"本部署未配置{CHANNELS.get(m.group(1), m.group(1))}渠道"),
    (re.compile(r"^the channel stopped unexpectedly \((\w+)\)$"),
     lambda m: f"发送渠道意外中断（{m.group(1)}），可能已送达"),
]


def failure_reason(text: str | None) -> str:
    """Why a notification failed (or may not have arrived), in Chinese: the channel's name
    and what happened; what a server answered (an SMTP or HTTP code and its text) is kept as
    it came after the channel's name, for whoever looks into it."""
    if not text:
        return ""
    for pattern, wording in REASONS:
        found = pattern.match(text)
        if found:
            return wording(found)
    sender, _, rest = text.partition(": ")
    if sender not in SENDERS or not rest:
        return text
    for start, wording in CHANNEL_REASONS:
        if rest.startswith(start):
            return f"{SENDERS[sender]}：{wording}"
    found = NO_ANSWER.match(rest)
    if found:
        return f"{SENDERS[sender]}：{found.group(1)} 秒内无应答，可能已送达"
    return f"{SENDERS[sender]}：{rest}"
