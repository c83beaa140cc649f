"""The channels against real local endpoints: what arrives, and how each failure is classified.

The classification is the contract with the notifications service: temporary → retry later on
this channel, permanent → next channel, unknown (may have been delivered) → never repeat alone.
"""
import logging
import os
import traceback

import pytest

from orglife.broker import free_ports, wait_dead
from orglife.devservers import LocalEndpoints
from services.notifications.channels import (
    DeliveryUnknown, EmailChannel, InAppChannel, PermanentFailure, RobotChannel, SmsChannel,
    SlidingWindowLimiter, TemporaryFailure, channels_from_config, robot_flavour,
)
from services.notifications.channels import _failure_for_code

PHONE = "13912345678"
EMAIL = "li.xiaohong@example.cn"
SUBJECT = "会议提醒：石桥村党支部主题党日"
BODY = "明天（11月21日）上午9:00在村委会二楼召开主题党日活动，请准时参加。\n不能参加的请向支部书记请假。"


def sms_channel(endpoints, name, **timeouts):
    return SmsChannel(endpoints.sms.url_for(name), **timeouts)


def refused_url(path="/sms"):
    """A loopback port nobody listens on."""
    return f"http://127.0.0.1:{free_ports(1)[0]}{path}"


# --- e-mail --------------------------------------------------------------------------------------

def test_an_email_with_a_chinese_subject_and_body_arrives_intact(endpoints, own_name):
    to = f"{own_name}@example.cn"
    receipt = EmailChannel(endpoints.smtp_url, sender="zuzhibu@county.example").send(
        to, SUBJECT, BODY)

    mails = [mail for mail in endpoints.mails() if mail.to == to]
    assert len(mails) == 1
    mail = mails[0]
    assert mail.subject == SUBJECT
    assert mail.body.rstrip("\n") == BODY
    assert mail.sender == "zuzhibu@county.example"
    assert mail.envelope_to == to
    assert mail.message_id in receipt and to not in receipt


def test_an_invalid_email_address_is_permanent_and_nothing_is_sent(endpoints):
    before = len(endpoints.mails())
    with pytest.raises(PermanentFailure) as failure:
        EmailChannel(endpoints.smtp_url).send("li xiaohong at example", SUBJECT, BODY)
    assert not failure.value.may_have_been_delivered
    assert len(endpoints.mails()) == before


def test_an_unreachable_smtp_server_is_temporary():
    channel = EmailChannel(f"smtp://127.0.0.1:{free_ports(1)[0]}", timeout=2)
    with pytest.raises(TemporaryFailure) as failure:
        channel.send(EMAIL, SUBJECT, BODY)
    assert not failure.value.may_have_been_delivered
    assert "cannot reach" in failure.value.detail


def test_smtp_reply_codes_4xx_temporary_5xx_permanent_and_the_address_is_not_quoted():
    refused = _failure_for_code(550, "email: recipient refused",
                                f"5.1.1 <{EMAIL}>: Recipient address rejected".encode())
    busy = _failure_for_code(451, "email: recipient refused", b"4.3.0 try again later")
    assert isinstance(refused, PermanentFailure) and isinstance(busy, TemporaryFailure)
    assert EMAIL not in str(refused) and "550" in str(refused)


# --- SMS -----------------------------------------------------------------------------------------

def test_an_sms_is_delivered_as_phone_and_text(endpoints, own_name):
    receipt = sms_channel(endpoints, own_name).send(PHONE, SUBJECT, BODY)

    assert receipt == "sms: accepted (HTTP 200)"
    [request] = endpoints.sms.requests(f"/sms/{own_name}")
    assert request["body"] == {"phone": PHONE, "text": f"{SUBJECT}\n{BODY}"}


@pytest.mark.parametrize("plan, expected, retry_after", [
    ({"mode": "http500"}, TemporaryFailure, None),
    ({"mode": "http", "status": 503, "retry_after": 30}, TemporaryFailure, 30.0),
    ({"mode": "http", "status": 429, "retry_after": 7}, TemporaryFailure, 7.0),
    ({"mode": "http", "status": 400}, PermanentFailure, None),
])
def test_the_gateway_failing_on_purpose_is_classified(endpoints, own_name, plan, expected,
                                                      retry_after):
    endpoints.sms.fail_next(1, path=f"/sms/{own_name}", **plan)
    with pytest.raises(expected) as failure:
        sms_channel(endpoints, own_name).send(PHONE, SUBJECT, BODY)
    assert type(failure.value) is expected
    assert not failure.value.may_have_been_delivered
    assert getattr(failure.value, "retry_after", None) == retry_after
    assert len(endpoints.sms.requests(f"/sms/{own_name}")) == 1
    # the failure was played once: the next send goes through
    assert sms_channel(endpoints, own_name).send(PHONE, SUBJECT, BODY)


def test_a_timeout_after_the_request_left_may_have_been_delivered(endpoints, own_name):
    endpoints.sms.fail_next(1, "timeout", path=f"/sms/{own_name}", delay=3)
    with pytest.raises(DeliveryUnknown) as failure:
        sms_channel(endpoints, own_name, read_timeout=0.5).send(PHONE, SUBJECT, BODY)
    assert failure.value.may_have_been_delivered and not failure.value.retryable
    [request] = endpoints.sms.requests(f"/sms/{own_name}")
    assert request["answer"] == "timeout"  # the gateway did get it


def test_a_connection_dropped_after_sending_may_have_been_delivered(endpoints, own_name):
    endpoints.sms.fail_next(1, "close", path=f"/sms/{own_name}")
    with pytest.raises(DeliveryUnknown):
        sms_channel(endpoints, own_name).send(PHONE, SUBJECT, BODY)
    assert len(endpoints.sms.requests(f"/sms/{own_name}")) == 1


def test_a_gateway_that_refuses_connections_is_temporary_and_not_delivered():
    with pytest.raises(TemporaryFailure) as failure:
        SmsChannel(refused_url(), connect_timeout=2).send(PHONE, SUBJECT, BODY)
    assert not failure.value.may_have_been_delivered


def test_the_environments_proxy_settings_are_followed(endpoints, own_name, monkeypatch):
    """The environment is read once per endpoint (not at every send), and still obeyed: a
    proxy that refuses connections stops the message, NO_PROXY lets it go straight."""
    from services.notifications import channels
    monkeypatch.setenv("HTTP_PROXY", refused_url("/"))
    monkeypatch.setenv("NO_PROXY", "example.invalid")
    channels._environment_settings.cache_clear()
    try:
        with pytest.raises(TemporaryFailure):
            sms_channel(endpoints, own_name, connect_timeout=2).send(PHONE, SUBJECT, BODY)
        assert endpoints.sms.requests(f"/sms/{own_name}") == []
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        channels._environment_settings.cache_clear()
        assert sms_channel(endpoints, own_name).send(PHONE, SUBJECT, BODY).startswith("sms:")
        assert len(endpoints.sms.requests(f"/sms/{own_name}")) == 1
    finally:
        channels._environment_settings.cache_clear()


def test_a_malformed_phone_number_is_permanent():
    with pytest.raises(PermanentFailure):
        SmsChannel(refused_url()).send("call me", SUBJECT, BODY)


# --- robots --------------------------------------------------------------------------------------

@pytest.mark.parametrize("flavour, expected", [
    ("dingtalk", {"msgtype": "text", "text": {"content": f"{SUBJECT}\n{BODY}"}}),
    ("wecom", {"msgtype": "text", "text": {"content": f"{SUBJECT}\n{BODY}"}}),
    ("feishu", {"msg_type": "text", "content": {"text": f"{SUBJECT}\n{BODY}"}}),
])
def test_each_robot_flavour_gets_its_own_request_shape(endpoints, own_name, limiter, flavour,
                                                       expected):
    url = endpoints.robot.url_for(own_name, f"flavour={flavour}")
    receipt = RobotChannel(limiter=limiter).send(url, SUBJECT, BODY)

    assert receipt == f"robot {flavour}: accepted (errcode 0)"
    [request] = endpoints.robot.requests(f"/robot/{own_name}")
    assert request["body"] == expected


def test_the_default_robot_is_used_when_no_address_is_given(endpoints, own_name, limiter):
    RobotChannel(endpoints.robot.url_for(own_name), limiter=limiter).send("", SUBJECT, BODY)
    assert len(endpoints.robot.requests(f"/robot/{own_name}")) == 1
    with pytest.raises(PermanentFailure):
        RobotChannel(limiter=limiter).send("", SUBJECT, BODY)


def test_wecom_text_is_cut_to_its_2048_byte_limit(endpoints, own_name, limiter):
    url = endpoints.robot.url_for(own_name, "flavour=wecom")
    RobotChannel(limiter=limiter).send(url, SUBJECT, BODY * 40)
    [request] = endpoints.robot.requests(f"/robot/{own_name}")
    content = request["body"]["text"]["content"]
    assert len(content.encode("utf-8")) <= 2048 and content.endswith("…")


@pytest.mark.parametrize("url, flavour", [
    ("https://oapi.dingtalk.com/robot/send?access_token=abc", "dingtalk"),
    ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc", "wecom"),
    ("https://open.feishu.cn/open-apis/bot/v2/hook/abc", "feishu"),
    ("https://open.larksuite.com/open-apis/bot/v2/hook/abc", "feishu"),
    ("http://127.0.0.1:9/robot?flavour=wecom", "wecom"),
    ("http://127.0.0.1:9/robot?flavour=lark", "feishu"),
    ("http://127.0.0.1:9/robot", "dingtalk"),
    ("https://open.feishu.cn/hook/x?flavour=dingtalk", "feishu"),  # the host wins
])
def test_the_flavour_comes_from_the_host_then_the_query_then_dingtalk(url, flavour):
    assert robot_flavour(url).name == flavour


def test_a_200_answer_with_errcode_310000_is_permanent(endpoints, own_name, limiter):
    endpoints.robot.fail_next(1, "errcode", path=f"/robot/{own_name}", errcode=310000,
                              errmsg="keywords not in content")
    with pytest.raises(PermanentFailure) as failure:
        RobotChannel(limiter=limiter).send(endpoints.robot.url_for(own_name), SUBJECT, BODY)
    assert "310000" in failure.value.detail and not failure.value.may_have_been_delivered


def test_errcode_130101_is_temporary_and_keeps_the_robot_quiet_for_ten_minutes(
        endpoints, own_name, limiter):
    url = endpoints.robot.url_for(own_name)
    endpoints.robot.fail_next(1, "errcode", path=f"/robot/{own_name}", errcode=130101,
                              errmsg="send too fast, exceed 20 times per minute")
    channel = RobotChannel(limiter=limiter)
    with pytest.raises(TemporaryFailure) as failure:
        channel.send(url, SUBJECT, BODY)
    assert failure.value.retry_after == 600
    with pytest.raises(TemporaryFailure) as blocked:
        channel.send(url, SUBJECT, BODY)
    assert 590 < blocked.value.retry_after <= 600
    assert len(endpoints.robot.requests(f"/robot/{own_name}")) == 1  # the second never left


def test_feishu_code_in_a_200_answer_is_read_too(endpoints, own_name, limiter):
    endpoints.robot.fail_next(1, "errcode", path=f"/robot/{own_name}", errcode=19024,
                              errmsg="Key Words Not Found")
    with pytest.raises(PermanentFailure):
        RobotChannel(limiter=limiter).send(
            endpoints.robot.url_for(own_name, "flavour=feishu"), SUBJECT, BODY)


def test_a_robot_http_500_is_temporary(endpoints, own_name, limiter):
    endpoints.robot.fail_next(1, "http500", path=f"/robot/{own_name}")
    with pytest.raises(TemporaryFailure):
        RobotChannel(limiter=limiter).send(endpoints.robot.url_for(own_name), SUBJECT, BODY)


def test_the_21st_dingtalk_message_within_a_minute_is_refused_without_sending(
        endpoints, own_name, limiter):
    url = endpoints.robot.url_for(own_name, "flavour=dingtalk")
    channel = RobotChannel(limiter=limiter)
    for number in range(20):
        channel.send(url, SUBJECT, f"第{number + 1}条")
    with pytest.raises(TemporaryFailure) as refused:
        channel.send(url, SUBJECT, "第21条")

    assert 0 < refused.value.retry_after <= 60
    assert "rate limit" in refused.value.detail and not refused.value.attempted
    assert len(endpoints.robot.requests(f"/robot/{own_name}")) == 20
    # another robot has a budget of its own
    channel.send(endpoints.robot.url_for(own_name + "b"), SUBJECT, BODY)


def test_feishu_allows_five_a_second(endpoints, own_name, limiter):
    url = endpoints.robot.url_for(own_name, "flavour=feishu")
    channel = RobotChannel(limiter=limiter)
    for _ in range(5):
        channel.send(url, SUBJECT, BODY)
    with pytest.raises(TemporaryFailure) as refused:
        channel.send(url, SUBJECT, BODY)
    assert 0 < refused.value.retry_after <= 1.0


def test_the_limiter_gives_a_slot_back_exactly_one_window_after_it_was_used():
    now = [1000.0]
    limiter = SlidingWindowLimiter(clock=lambda: now[0])
    limits = ((20, 60.0),)
    for second in range(20):
        now[0] = 1000.0 + second
        assert limiter.acquire("robot", limits) == 0.0
    now[0] = 1030.0
    assert limiter.acquire("robot", limits) == pytest.approx(30.0)  # the first one ages out
    now[0] = 1060.0
    assert limiter.acquire("robot", limits) == 0.0
    assert limiter.acquire("robot", limits) == pytest.approx(1.0)
    limiter.release("robot")  # a send that never left
    assert limiter.acquire("robot", limits) == 0.0


# --- in-app and wiring ---------------------------------------------------------------------------

def test_in_app_always_succeeds():
    assert InAppChannel().send("m1", SUBJECT, BODY) == "in_app: stored"


def test_channels_from_config_has_only_what_is_configured(endpoints):
    assert set(channels_from_config({})) == {"robot", "in_app"}
    channels = channels_from_config({**endpoints.config(), "ORGLIFE_MAIL_FROM": "a@b.cn"})
    assert set(channels) == {"email", "sms", "robot", "in_app"}
    assert channels["email"].sender == "a@b.cn"
    assert all(channel.name == name for name, channel in channels.items())


def test_robots_post_only_to_vendor_hosts_the_default_robot_or_listed_hosts(endpoints, own_name):
    """A robot_url is typed in by a branch secretary: pointed at an internal address, nothing
    is posted (a permanent failure, so the message falls to in-app)."""
    channels = channels_from_config(endpoints.config())
    robot = channels["robot"]
    before = len(endpoints.robot.requests())
    robot.send(endpoints.robot.url_for(own_name, "access_token=t"), SUBJECT, BODY)  # its host
    assert len(endpoints.robot.requests()) == before + 1
    elsewhere = f"http://127.0.0.1:{free_ports(1)[0]}/robot/send?access_token=t"
    for url in (elsewhere, "http://169.254.169.254/latest/meta-data?access_token=t",
                "http://localhost/robot?access_token=t"):
        with pytest.raises(PermanentFailure, match="host not allowed"):
            robot.send(url, SUBJECT, BODY)
    from services.notifications.channels import host_allowed, robot_hosts
    allowed = robot_hosts({"ORGLIFE_ROBOT_HOSTS": "relay.county.gov.cn, 10.0.0.5:8080"})
    assert host_allowed("https://oapi.dingtalk.com/robot/send?access_token=x", allowed)
    assert host_allowed("https://open.feishu.cn/open-apis/bot/v2/hook/x", allowed)
    assert host_allowed("https://relay.county.gov.cn:8443/robot", allowed)
    assert host_allowed("http://10.0.0.5:8080/robot", allowed)
    assert not host_allowed("http://10.0.0.5:8081/robot", allowed)
    assert not host_allowed("https://oapi.dingtalk.com.evil.cn/robot", allowed)
    assert not host_allowed("http://127.0.0.1:99999/robot", allowed)


# --- privacy (SPEC §7) ---------------------------------------------------------------------------

def test_no_phone_email_or_robot_token_in_logs_or_exception_texts(endpoints, own_name, limiter,
                                                                  caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="orglife.notifications.channels")
    token = "access_token=SECRETTOKEN42"
    robot_url = endpoints.robot.url_for(own_name, token)
    sms = sms_channel(endpoints, own_name, read_timeout=0.5)
    email_channel = EmailChannel(endpoints.smtp_url)
    robot = RobotChannel(limiter=limiter)

    email_channel.send(EMAIL, SUBJECT, BODY)
    sms.send(PHONE, SUBJECT, BODY)
    robot.send(robot_url, SUBJECT, BODY)
    endpoints.sms.fail_next(1, "http", path=f"/sms/{own_name}", status=400,
                            errmsg=f"bad phone {PHONE}")
    endpoints.sms.fail_next(1, "timeout", path=f"/sms/{own_name}", delay=2)
    endpoints.robot.fail_next(1, "errcode", path=f"/robot/{own_name}", errcode=310000,
                              errmsg=f"ip not in whitelist, {robot_url}")
    attempts = [
        lambda: sms.send(PHONE, SUBJECT, BODY),
        lambda: sms.send(PHONE, SUBJECT, BODY),
        lambda: SmsChannel(refused_url()).send(PHONE, SUBJECT, BODY),
        lambda: robot.send(robot_url, SUBJECT, BODY),
        lambda: RobotChannel(limiter=limiter).send(refused_url(f"/r?{token}"), SUBJECT, BODY),
        lambda: EmailChannel(f"smtp://127.0.0.1:{free_ports(1)[0]}").send(EMAIL, SUBJECT, BODY),
        lambda: email_channel.send(f"<{EMAIL}>", SUBJECT, BODY),
    ]
    texts = []
    for attempt in attempts:
        with pytest.raises((TemporaryFailure, PermanentFailure, DeliveryUnknown)) as failure:
            attempt()
        texts.append(str(failure.value))
        texts.append("".join(traceback.format_exception(failure.value)))

    ours = [r.getMessage() for r in caplog.records
            if r.name == "orglife.notifications.channels"]
    assert len(ours) >= len(attempts)
    for text in texts + [caplog.text]:
        assert PHONE not in text and EMAIL not in text
    for text in texts + ours:
        assert "SECRETTOKEN42" not in text


# --- the endpoints themselves ----------------------------------------------------------------------

def test_the_endpoints_stop_leaving_no_process_even_on_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with LocalEndpoints(tmp_path) as endpoints:
            pids = endpoints.pids()
            assert len(pids) == 3
            SmsChannel(endpoints.sms_url).send(PHONE, SUBJECT, BODY)
            raise RuntimeError("boom")

    for pid in pids:  # each server was the leader of its own process group
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    assert endpoints.sms.requests()[0]["body"]["phone"] == PHONE  # still readable afterwards


def test_servers_left_by_a_killed_run_are_stopped_by_the_next_start(tmp_path):
    import signal
    import subprocess
    import sys

    import psutil

    run = subprocess.Popen([sys.executable, "-m", "orglife.devservers", "up", "--dir",
                            str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline().startswith("ORGLIFE_SMTP_URL=")
        children = psutil.Process(run.pid).children()
        assert len(children) == 3
    finally:
        run.send_signal(signal.SIGKILL)  # no chance to stop its servers
        run.wait()
        run.stdout.close()

    with LocalEndpoints(tmp_path):
        assert wait_dead(children, timeout=5)  # gone (or zombies awaiting PID 1)


def test_a_malformed_answer_after_sending_is_unknown_and_a_malformed_url_permanent():
    """An answer that cannot be read (a Content-Length of two values) came after the request
    left: it may have been delivered, never sent again. A port that is no number is refused
    before anything leaves."""
    import socket
    import threading
    from services.notifications.channels import DeliveryUnknown, JsonPoster, PermanentFailure
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = []

    def answer():
        conn, _ = server.accept()
        received.append(conn.recv(65536))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok")
        conn.close()
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    poster = JsonPoster("sms", 2, 2)
    with pytest.raises(DeliveryUnknown):
        poster.post(f"http://127.0.0.1:{server.getsockname()[1]}/sms", {"phone": "1", "text": "x"})
    thread.join(5)
    server.close()
    assert received and received[0].startswith(b"POST /sms")
    with pytest.raises(PermanentFailure):
        poster.post("http://127.0.0.1:abc/sms", {"phone": "1", "text": "x"})
