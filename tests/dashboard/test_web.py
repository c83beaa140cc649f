"""The dashboard's edge without a broker: sign-in links and cookies, the error table, what a
form may redirect to, static files."""
import gzip
from datetime import timedelta

import jwt
import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from orglife.common.auth import decode_token, mint_token
from orglife.common.errors import (
    Conflict, Forbidden, NotFound, Unauthorized, ValidationError,
)
from services.dashboard import tickets, web
from services.dashboard.reads import ReadTimeout
from services.dashboard.static_files import StaticFiles
from tests.conftest import SECRET


def request(path="/", method="GET", headers=None, cookie=None):
    builder = EnvironBuilder(path=path, method=method, headers=headers or {})
    if cookie:
        builder.headers["Cookie"] = f"{tickets.COOKIE}={cookie}"
    return Request(builder.get_environ())


def test_a_sign_in_link_is_good_once_and_is_no_token_for_the_services():
    cli = mint_token(SECRET, "cli", "township_admin", "t1")
    ticket = tickets.mint_ticket(SECRET, cli)
    with pytest.raises(Unauthorized, match="bad token"):
        decode_token(SECRET, f"Bearer {ticket}")  # services refuse it (no role, an audience)
    redeem = tickets.Tickets(SECRET)
    session, max_age = redeem.redeem(ticket)
    who = decode_token(SECRET, f"Bearer {session}")
    assert (who.sub, who.role, who.org_id) == ("cli", "township_admin", "t1")
    assert 12 * 3600 - 60 <= max_age <= 12 * 3600
    with pytest.raises(Unauthorized, match="used already"):
        redeem.redeem(ticket)
    with pytest.raises(Unauthorized):
        tickets.Tickets("another-secret-0123456789-abcdefghijklmn").redeem(
            tickets.mint_ticket(SECRET, cli))
    # never longer than the CLI's own token
    short = mint_token(SECRET, "cli", "county_admin", ttl=timedelta(minutes=30))
    _, max_age = tickets.Tickets(SECRET).redeem(tickets.mint_ticket(SECRET, short))
    assert max_age <= 30 * 60
    expired = jwt.encode({"sub": "x", "signin_role": "county_admin", "aud":
                          tickets.TICKET_AUDIENCE, "exp": 1, "jti": "j", "until": 2},
                         SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="expired"):
        redeem.redeem(expired)
    with pytest.raises(Unauthorized):
        tickets.mint_ticket(SECRET, "not-a-token")


def test_a_pasted_token_is_checked_and_kept_as_it_is():
    token = mint_token(SECRET, "li", "branch_secretary", "b1")
    kept, who, seconds = tickets.check_pasted(SECRET, f"  Bearer {token}\n")
    assert kept == token and who.org_id == "b1" and seconds > 29 * 24 * 3600
    for bad in ("", "nonsense", mint_token("other-secret-0123456789-abcdefghijkl", "x",
                                           "county_admin")):
        with pytest.raises(Unauthorized):
            tickets.check_pasted(SECRET, bad)


def test_the_cookie_is_http_only_and_strict():
    header = tickets.cookie_header("T", 600, secure=False)
    assert header == "orglife_session=T; Path=/; HttpOnly; SameSite=Strict; Max-Age=600"
    assert tickets.cookie_header("", 0, secure=True).endswith("Max-Age=0; Secure")
    assert web.is_secure(request(headers={"X-Forwarded-Proto": "https"}))
    assert not web.is_secure(request())


def test_each_port_of_a_host_keeps_its_own_session():
    """Two dashboards on one host (two homes side by side) must not replace each other's
    session: browsers keep cookies per host, so the port goes into the cookie's name."""
    def on(host, **headers):
        return Request(EnvironBuilder(path="/", base_url=f"http://{host}/",
                                      headers=headers).get_environ())
    assert tickets.cookie_name(on("127.0.0.1:8600")) == "orglife_session_8600"
    assert tickets.cookie_name(on("127.0.0.1:8601")) == "orglife_session_8601"
    assert tickets.cookie_name(on("[::1]:8600")) == "orglife_session_8600"
    assert tickets.cookie_name(on("orglife.example.gov.cn")) == "orglife_session"
    behind = on("127.0.0.1:8600", **{"X-Forwarded-Host": "orglife.example.gov.cn"})
    assert tickets.cookie_name(behind) == "orglife_session"
    assert web.session_cookie(on("127.0.0.1:8601"), "T", 60).startswith("orglife_session_8601=T;")
    mine = Request(EnvironBuilder(path="/", base_url="http://127.0.0.1:8601/", headers={
        "Cookie": "orglife_session_8600=OTHER; orglife_session_8601=MINE"}).get_environ())
    assert tickets.session_token(mine) == "MINE"


def test_errors_map_to_statuses_in_one_table():
    cases = {Forbidden("x"): 403, NotFound("x"): 404, ValidationError({"year": ["bad"]}): 400,
             Conflict("x"): 409, ReadTimeout("scoring", "ranking", 20): 504,
             KeyError("boom"): 500, Unauthorized("x"): 401}
    for exc, status in cases.items():
        assert web.error_status(exc)[0] == status, exc
    page = web.error_response(Forbidden("organization 't1' is outside the scope"),
                              request("/org/t1"))
    body = page.get_data(as_text=True)
    assert page.status_code == 403 and "无权查看" in body and "t1" not in body
    page = web.error_response(KeyError("secret detail"), request("/org/c1"))
    body = page.get_data(as_text=True)
    assert page.status_code == 500 and "secret detail" not in body and "Traceback" not in body
    page = web.error_response(ValidationError({"year": ["Not a valid integer."]}),
                              request("/org/c1?year=x"))
    body = page.get_data(as_text=True)
    assert page.status_code == 400 and "年度：不是有效的整数" in body and "Not a valid" not in body
    page = web.error_response(NotFound("member 'm99' not found"), request("/member/m99"))
    body = page.get_data(as_text=True)
    assert page.status_code == 404 and "党员「m99」不存在" in body and "not found" not in body
    # not signed in: the sign-in form, coming back here afterwards; a stale cookie is cleared
    page = web.error_response(Unauthorized("x"), request("/branch/b1?year=2025", cookie="old"))
    assert page.status_code == 303
    assert page.headers["Location"] == "/signin?next=%2Fbranch%2Fb1%3Fyear%3D2025&expired=1"
    assert "Max-Age=0" in page.headers["Set-Cookie"]
    assert web.error_response(Unauthorized("x"), request("/")).headers["Location"] == \
        "/signin?next=%2F"
    # a fragment htmx fetches (the health panel every 15 s): the whole page goes to sign in,
    # back to the page the user was on; no sign-in form swapped into the panel
    fragment = web.error_response(Unauthorized("x"), request(
        "/panel/health", cookie="old", headers={"HX-Request": "true", "HX-Current-URL": "http://127.0.0.1:8600/org/t1?year=2025"}))
    assert fragment.status_code == 401 and "Location" not in fragment.headers
    assert fragment.headers["HX-Redirect"] == "/signin?next=%2Forg%2Ft1%3Fyear%3D2025&expired=1"
    assert "Max-Age=0" in fragment.headers["Set-Cookie"] and fragment.get_data() == b""
    elsewhere = web.error_response(Unauthorized("x"), request("/panel/health", headers={
        "HX-Request": "true", "HX-Current-URL": "https://evil.example//x"}))
    assert elsewhere.headers["HX-Redirect"] == "/signin?next=%2F"  # never //host


def test_a_service_of_another_version_or_no_broker_is_named_not_a_bare_500(caplog):
    from amqp.exceptions import ConnectionError as AMQPConnectionError
    from kombu.exceptions import OperationalError
    from nameko.exceptions import IncorrectSignature, MethodNotFound, UnknownService
    cases = {MethodNotFound("branch_overview"): (502, "服务版本不一致"),
             IncorrectSignature("x"): (502, "服务版本不一致"),
             OperationalError("[Errno 111] Connection refused"): (503, "消息服务不可用"),
             AMQPConnectionError("lost"): (503, "消息服务不可用"),
             ConnectionRefusedError(111, "refused"): (503, "消息服务不可用")}
    for exc, (status, title) in cases.items():
        page = web.error_response(exc, request("/org/c1"))
        body = page.get_data(as_text=True)
        assert page.status_code == status and title in body, exc
        assert "refused" not in body and "branch_overview" not in body  # no internals shown
    # ... but the log has them, for whoever runs ./orglife status next
    assert "GET /org/c1: 503, OperationalError: [Errno 111] Connection refused" in caplog.text
    web.error_response(UnknownService("scoring"), request("/org/c1"))
    assert "503, UnknownService" in caplog.text and "scoring" in caplog.text


def test_forms_redirect_only_within_the_site_and_only_from_it():
    assert web.local_path("/org/c1?year=2025") == "/org/c1?year=2025"
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil", "javascript:x", None,
                "/\t/evil.example", "/\n/evil.example", "/\r/evil", " //evil.example",
                "/\x7f/evil"):
        assert web.local_path(bad) == "/"
    host = {"Host": "127.0.0.1:8600"}
    assert web.same_origin(request(method="POST", headers={**host, "Origin":
                                                            "http://127.0.0.1:8600"}))
    assert not web.same_origin(request(method="POST", headers={**host, "Origin":
                                                                "http://evil.example"}))
    assert not web.same_origin(request(method="POST", headers={**host, "Origin": "null"}))
    assert web.same_origin(request(method="POST", headers=host))  # not a browser


def test_behind_a_reverse_proxy_its_public_origin_is_this_sites(monkeypatch):
    """The proxy forwards Host as its upstream's (127.0.0.1:8600) while the browser's
    Origin is the public name: accepted from X-Forwarded-Host or ORGLIFE_DASHBOARD_ORIGINS,
    and another site is still refused."""
    public = {"Host": "127.0.0.1:8600", "Origin": "https://orglife.county.example"}
    monkeypatch.delenv("ORGLIFE_DASHBOARD_ORIGINS", raising=False)
    assert not web.same_origin(request(method="POST", headers=public))
    assert web.same_origin(request(method="POST", headers={
        **public, "X-Forwarded-Host": "orglife.county.example"}))
    monkeypatch.setenv("ORGLIFE_DASHBOARD_ORIGINS",
                       "https://orglife.county.example, https://other.example")
    assert web.same_origin(request(method="POST", headers=public))
    assert not web.same_origin(request(method="POST", headers={
        **public, "Origin": "https://evil.example"}))


def test_static_files_are_served_gzipped_and_cached_without_leaving_their_folder():
    files = StaticFiles()
    plain = files.response(request(), "vendor/echarts-6.0.0.min.js")
    packed = files.response(request(headers={"Accept-Encoding": "gzip, br"}),
                            "vendor/echarts-6.0.0.min.js")
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert len(packed.get_data()) < len(plain.get_data()) / 2
    assert "immutable" in plain.headers["Cache-Control"]
    again = files.response(request(headers={"If-None-Match": plain.headers["ETag"]}),
                           "vendor/echarts-6.0.0.min.js")
    assert again.status_code == 304
    assert files.response(request(), "css/dashboard.css").content_type.startswith("text/css")
    for bad in ("../service.py", "/etc/passwd", "vendor/README.md", "nothing.js"):
        with pytest.raises(NotFound):
            files.response(request(), bad)


def test_pages_carry_a_content_security_policy_that_allows_no_other_site():
    from werkzeug.wrappers import Response
    headers = web.secure_headers(Response("x")).headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "http" not in headers["Content-Security-Policy"]  # no CDN
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"


class _Silent:
    """A reply that never comes (the service's queue holds the request)."""

    def result(self):
        import eventlet
        eventlet.sleep(10)


class _Proxy:
    def __getattr__(self, method):
        class Method:
            @staticmethod
            def call_async(*args, **kwargs):
                return _Silent()
        return Method


def test_a_read_that_is_not_answered_is_a_stopped_service_or_a_slow_one():
    from nameko.exceptions import UnknownService

    from services.dashboard.reads import Failed, Reads, call
    stopped = Reads({"scoring": _Proxy()}, timeout=0.2, probe=lambda service: 0)
    with pytest.raises(UnknownService):  # nobody consumes its queue: 503 "服务未运行"
        stopped.one("scoring", "ranking", "c1")
    assert web.error_status(UnknownService("scoring"))[0] == 503
    slow = Reads({"scoring": _Proxy()}, timeout=0.2, probe=lambda service: 2)
    with pytest.raises(ReadTimeout):  # running but late: 504
        slow.one("scoring", "ranking", "c1")
    unknown = Reads({"scoring": _Proxy()}, timeout=0.2, probe=lambda service: 1 / 0)
    got = unknown.gather(optional=("r",), r=call("scoring", "ranking", "c1"))
    assert isinstance(got["r"], Failed) and isinstance(got["r"].error, ReadTimeout)


def test_error_details_are_worded_in_chinese_and_unknown_ones_kept():
    """services/dashboard/wording.py: what the services and marshmallow say in English, as
    the user reads it; a message it does not know is kept (it still says what to fix)."""
    from services.dashboard import wording
    assert wording.not_found("organization 't9' not found") == "组织「t9」不存在"
    assert wording.not_found("table 'nope' not found") == "表格「nope」不存在"
    assert wording.not_found("something odd") == "something odd"
    assert wording.not_found('member "o\'k" not found') == "党员「o'k」不存在"
    assert wording.invalid({"as_of": ["must be between 1900-01-01 and 2100-12-31"],
                            "member_id": ["must be 1 to 64 characters, without '/' or "
                                          "spaces"]}) == \
        "截至日期：应在 1900-01-01 至 2100-12-31 之间；党员编号：应为 1 至 64 个字符，不含“/”和空格"
    assert wording.invalid({"year": ["Must be greater than or equal to 2000 and less than or "
                                     "equal to 2100."],
                            "as_of": ["Not a valid date."]}) == \
        "截至日期：不是有效的日期（应写作 2026-11-20）；年度：应在 2000 至 2100 之间"
    assert wording.invalid({"year": ["2027 has not begun (today is 2026-11-20)"]}) == \
        "年度：2027 年尚未开始（今天是 2026-11-20）"
    assert wording.invalid({"as_of": ["2025-06-01 is before 2026"]}) == \
        "截至日期：2025-06-01 早于 2026 年"
    assert wording.invalid({"branch_id": ["'t1' is a township, not a branch"]}) == \
        "支部编号：「t1」不是支部"
    assert wording.invalid({"weird": ["new message"]}) == "weird：new message"


def test_why_a_notification_failed_is_said_in_chinese_server_answers_kept():
    from services.dashboard.wording import failure_reason
    assert failure_reason(None) == "" and failure_reason("") == ""
    assert failure_reason("email: not a valid e-mail address") == "邮件：邮箱地址无效"
    assert failure_reason("sms: no answer within 10 s (the request may have gone through)") \
        == "短信：10 秒内无应答，可能已送达"
    assert failure_reason("robot dingtalk: rate limit reached, not sent") == \
        "钉钉群机器人：达到发送频率上限，未发送"
    assert failure_reason("no email address any more") == "已没有邮件地址"
    assert failure_reason("sms is not configured here") == "本部署未配置短信渠道"
    assert failure_reason("the channel stopped unexpectedly (KeyError)") == \
        "发送渠道意外中断（KeyError），可能已送达"
    # what a server answered stays as it came, after the channel's name
    assert failure_reason("sms: HTTP 400 bad number") == "短信：HTTP 400 bad number"
    assert failure_reason("something new") == "something new"
