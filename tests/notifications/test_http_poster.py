"""The HTTP channels' transport (channels.JsonPoster over http.client) on the paths the local
gateway of test_channels.py does not take: TLS with the certificate checked, and the
environment's proxies, plain and tunnelled, against real sockets."""
import base64
import http.server
import json
import ssl
import subprocess
import threading
import time

import pytest

from services.notifications import channels
from services.notifications.channels import PermanentFailure, SmsChannel, TemporaryFailure
from tests.notifications.local_server import LocalServer

PHONE = "13912345678"


@pytest.fixture
def fresh_environment(monkeypatch):
    """No proxy or CA bundle from the machine; the cached reading of the environment
    forgotten before and after."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    channels._environment_settings.cache_clear()
    yield monkeypatch
    channels._environment_settings.cache_clear()


@pytest.fixture
def tls_gateway(tmp_path):
    """An HTTPS gateway on 127.0.0.1 with a self-signed certificate: (url, cert path, bodies)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    bodies = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            answer = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/sms", cert, bodies
    server.shutdown()
    server.server_close()


def test_an_untrusted_certificate_stops_the_message_and_a_named_bundle_lets_it_go(
        tls_gateway, fresh_environment):
    url, cert, bodies = tls_gateway
    with pytest.raises(TemporaryFailure) as failure:
        SmsChannel(url, connect_timeout=5).send(PHONE, "提醒", "明天开会")
    assert "cannot connect" in failure.value.detail and bodies == []  # nothing left
    fresh_environment.setenv("REQUESTS_CA_BUNDLE", str(cert))
    channels._environment_settings.cache_clear()
    assert SmsChannel(url).send(PHONE, "提醒", "明天开会") == "sms: accepted (HTTP 200)"
    assert bodies == [{"phone": PHONE, "text": "提醒\n明天开会"}]


class FakeProxy(LocalServer):
    """A server (a proxy, or an endpoint) that records the head of each request and answers
    it with `answer`."""

    def __init__(self, answer: bytes):
        self.answer = answer
        self.heads: list[str] = []
        super().__init__(backlog=4)

    def serve(self, conn):
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.heads.append(data.split(b"\r\n\r\n")[0].decode("latin-1"))
            conn.sendall(self.answer)


def test_a_plain_http_request_goes_whole_to_the_proxy_with_its_credentials(fresh_environment):
    proxy = FakeProxy(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    try:
        fresh_environment.setenv("HTTP_PROXY", f"http://zzb:p%40ss@127.0.0.1:{proxy.port}")
        receipt = SmsChannel("http://gateway.example.invalid/sms?team=1").send(
            PHONE, "提醒", "明天开会")
    finally:
        proxy.close()
    assert receipt == "sms: accepted (HTTP 200)"
    [head] = proxy.heads
    lines = head.split("\r\n")
    assert lines[0] == "POST http://gateway.example.invalid/sms?team=1 HTTP/1.1"
    expected = base64.b64encode(b"zzb:p@ss").decode()
    assert f"Proxy-Authorization: Basic {expected}" in lines


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
    b"garbage\r\n\r\n",
], ids=["refused", "garbage"])
def test_https_through_a_proxy_is_tunnelled_and_a_failed_tunnel_is_temporary(
        fresh_environment, answer):
    proxy = FakeProxy(answer)
    try:
        fresh_environment.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        with pytest.raises(TemporaryFailure) as failure:
            SmsChannel("https://gateway.example.invalid/sms").send(PHONE, "提醒", "明天开会")
    finally:
        proxy.close()
    assert not failure.value.may_have_been_delivered
    [head] = proxy.heads  # only the tunnel was asked for: the message never left
    assert head.split("\r\n")[0].startswith("CONNECT gateway.example.invalid:443 HTTP/")


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def test_a_url_with_chinese_in_it_is_sent_percent_encoded(fresh_environment):
    """A robot or gateway URL as a secretary typed it (members accepts it) still goes."""
    endpoint = FakeProxy(OK)
    try:
        receipt = SmsChannel(f"http://127.0.0.1:{endpoint.port}/sms?签名=组织部").send(
            PHONE, "提醒", "明天开会")
    finally:
        endpoint.close()
    assert receipt == "sms: accepted (HTTP 200)"
    [head] = endpoint.heads
    assert head.split("\r\n")[0] == \
        "POST /sms?%E7%AD%BE%E5%90%8D=%E7%BB%84%E7%BB%87%E9%83%A8 HTTP/1.1"


def test_a_url_that_cannot_be_sent_is_refused_before_anything_leaves(fresh_environment):
    with pytest.raises(PermanentFailure) as failure:  # a host name label over 63 characters
        SmsChannel(f"http://{'a' * 70}.example.invalid/sms").send(PHONE, "提醒", "开会")
    assert "not a usable endpoint URL" in failure.value.detail
    assert not failure.value.may_have_been_delivered


def test_credentials_in_the_url_become_basic_authorization_not_part_of_the_line(
        fresh_environment):
    endpoint = FakeProxy(OK)
    try:
        SmsChannel(f"http://zzb:p%40ss@127.0.0.1:{endpoint.port}/sms").send(PHONE, "提醒", "开会")
    finally:
        endpoint.close()
    [head] = endpoint.heads
    lines = head.split("\r\n")
    assert lines[0] == "POST /sms HTTP/1.1"
    assert f"Authorization: Basic {base64.b64encode(b'zzb:p@ss').decode()}" in lines


def test_a_proxy_that_is_not_an_http_proxy_is_refused(fresh_environment):
    fresh_environment.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(PermanentFailure) as failure:
        SmsChannel("http://gateway.example.invalid/sms").send(PHONE, "提醒", "明天开会")
    assert "not an http:// proxy" in failure.value.detail


def test_a_host_that_cannot_be_named_is_refused_before_the_proxy_hears_of_it(
        fresh_environment):
    proxy = FakeProxy(OK)
    try:
        fresh_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        with pytest.raises(PermanentFailure):
            SmsChannel("http://exa mple.invalid/sms").send(PHONE, "提醒", "明天开会")
    finally:
        proxy.close()
    assert proxy.heads == []


class KeepAliveGateway(LocalServer):
    """An HTTP/1.1 SMS gateway on a real socket that keeps connections open between requests
    (or, with `drop_after_answer`, closes each one after answering without saying so, as a
    server whose keep-alive timeout ran out does): counts connections and requests."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, drop_after_answer: bool = False, answer: bytes = ANSWER):
        self.drop_after_answer = drop_after_answer
        self.answer = answer
        self.requests = 0
        self.ended = 0  # connections the client closed
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/sms"

    def serve(self, conn):
        with conn:
            conn.settimeout(5)
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        self.ended += 1
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(data) < length:
                    data += conn.recv(65536)
                data = data[length:]
                self.requests += 1
                conn.sendall(self.answer)
                if self.drop_after_answer:
                    return


def test_an_sms_gateway_keeping_connections_open_gets_one_connection_for_many_messages(
        fresh_environment):
    gateway = KeepAliveGateway()
    channel = SmsChannel(gateway.url)
    try:
        for n in range(5):
            assert channel.send(PHONE, "提醒", f"第{n}条") == "sms: accepted (HTTP 200)"
        assert (gateway.connections, gateway.requests) == (1, 5)
        channel.close()  # the service stops: the kept connection is closed
        deadline = time.monotonic() + 5
        while gateway.ended < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gateway.ended == 1
        assert channel.send(PHONE, "提醒", "关闭之后") == "sms: accepted (HTTP 200)"
        assert gateway.connections == 2  # after close() nothing is kept any more
    finally:
        gateway.close()


def test_a_kept_connection_the_gateway_closed_is_not_used_and_nothing_is_lost(
        fresh_environment):
    """The gateway ends each connection after its answer without saying so: the next
    message sees the kept connection closed, goes on a new one and is delivered (not
    `unknown`), each exactly once."""
    gateway = KeepAliveGateway(drop_after_answer=True)
    channel = SmsChannel(gateway.url)
    try:
        for n in range(4):
            assert channel.send(PHONE, "提醒", f"第{n}条") == "sms: accepted (HTTP 200)"
            time.sleep(0.1)  # the gateway's close reaches us
        assert (gateway.connections, gateway.requests) == (4, 4)
    finally:
        channel.close()
        gateway.close()


def test_a_connection_idle_too_long_is_not_used_again(fresh_environment):
    gateway = KeepAliveGateway()
    channel = SmsChannel(gateway.url)
    channel.http.IDLE_SECONDS = 0.05
    try:
        channel.send(PHONE, "提醒", "一")
        time.sleep(0.15)
        channel.send(PHONE, "提醒", "二")
        assert (gateway.connections, gateway.requests) == (2, 2)
    finally:
        channel.close()
        gateway.close()


def test_an_answer_saying_close_or_a_robot_post_keeps_nothing(fresh_environment):
    """A gateway answering `Connection: close` ends the connection; a robot's POST asks for
    a fresh connection each time (its vendor limits sends, not handshakes)."""
    endpoint = FakeProxy(OK)
    channel = SmsChannel(f"http://127.0.0.1:{endpoint.port}/sms")
    try:
        for _ in range(3):
            channel.send(PHONE, "提醒", "开会")
        assert len(endpoint.heads) == 3 and not channel.http._kept.get(
            next(iter(channel.http._kept), None))
    finally:
        channel.close()
        endpoint.close()
    robot = channels.JsonPoster("robot dingtalk")
    gateway = KeepAliveGateway()
    try:
        for _ in range(2):
            assert robot.post(gateway.url, {"msgtype": "text"}).status_code == 200
        assert (gateway.connections, gateway.requests) == (2, 2)
    finally:
        gateway.close()


@pytest.mark.parametrize("timeout, kept", [("1", False), ("3", True)])
def test_a_gateways_own_keep_alive_timeout_is_heeded(fresh_environment, timeout, kept):
    """`Keep-Alive: timeout=N`: a connection is used again only within N less a second."""
    gateway = KeepAliveGateway(answer=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                      b"Keep-Alive: timeout=" + timeout.encode() + b"\r\n\r\nok")
    channel = SmsChannel(gateway.url)
    try:
        channel.send(PHONE, "提醒", "一")
        channel.send(PHONE, "提醒", "二")
        assert gateway.connections == (1 if kept else 2)
    finally:
        channel.close()
        gateway.close()


def test_an_interim_answer_alone_is_unknown_and_its_connection_never_used_again(
        fresh_environment):
    """A 102 where the verdict should be: the message may have gone (never repeated), and
    the real verdict, still to come on that connection, must not pass for the next one's."""
    gateway = KeepAliveGateway(answer=b"HTTP/1.1 102 Processing\r\n\r\n")
    channel = SmsChannel(gateway.url)
    try:
        with pytest.raises(channels.DeliveryUnknown):
            channel.send(PHONE, "提醒", "一")
        with pytest.raises(channels.DeliveryUnknown):
            channel.send(PHONE, "提醒", "二")
        assert (gateway.connections, gateway.requests) == (2, 2)
    finally:
        channel.close()
        gateway.close()
