"""Notification channels: one small interface over e-mail, SMS, work-chat robots and in-app.

The notifications service decides *whether* and *when* to send (quiet hours, attempts, backoff,
the fallback order, the `unknown` state: SPEC §3-§4). A channel only hands one message to one
endpoint and reads the endpoint's verdict, so every channel answers in the same four ways:

- `send()` returns a short receipt: the endpoint accepted the message (delivered).
- `TemporaryFailure(detail, retry_after)`: nothing was delivered and trying later may work
  (connection refused, connect timeout, HTTP 5xx or 429, a robot's rate-limit errcode, our own
  per-robot rate limit). `retry_after` is the endpoint's own hint in seconds, or None (use the
  service's backoff schedule).
- `PermanentFailure(detail)`: nothing was delivered and this channel will never take this message
  to this address (bad address, HTTP 4xx, a robot's keyword/signature check): move on to the
  recipient's next channel.
- `DeliveryUnknown(detail)`: the request left and no verdict came back (read timeout, connection
  dropped after sending, 504 from a proxy). The endpoint may have accepted it: record the send as
  `unknown` and never repeat it on your own (an admin may `resend`).

All three derive from `ChannelFailure`, which carries `may_have_been_delivered` (True only for
`DeliveryUnknown`) and `retryable` (True only for `TemporaryFailure`).

Privacy (SPEC §7): details and log lines name the channel, the stage and the status, never the
address. Text an endpoint sends back is redacted before it is quoted, and no exception is chained
to a library error (`from None`): those quote addresses (smtplib) and robot URLs, whose
`access_token` lets anyone post to the group.

The module uses plain `smtplib` and `http.client`: both are cooperative once eventlet has
monkey-patched the process (KNOWN-TRAPS), and both work unpatched in a CLI or a test.
"""
from __future__ import annotations

import base64
import email.header
import email.utils
import http.client
import json
import logging
import os
import re
import smtplib
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import eventlet.patcher
import requests

log = logging.getLogger("orglife.notifications.channels")

DEFAULT_SENDER = "orglife@localhost"
CONNECT_TIMEOUT = 5.0  # seconds to reach an endpoint: nothing has left before this passes
READ_TIMEOUT = 15.0  # seconds to wait for a verdict once the request has left


# --- outcomes ----------------------------------------------------------------------------------

class ChannelFailure(Exception):
    """A send that did not end with the endpoint's acceptance. `detail` is safe to log and store."""

    may_have_been_delivered = False
    retryable = False

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class TemporaryFailure(ChannelFailure):
    """Not delivered; the same send may succeed later on this channel.

    `attempted` is False when the channel refused before trying (our own per-robot rate limit):
    the service may choose not to count such a refusal as one of its attempts.
    """

    retryable = True

    def __init__(self, detail: str, retry_after: float | None = None, attempted: bool = True):
        super().__init__(detail)
        self.retry_after = retry_after
        self.attempted = attempted


class PermanentFailure(ChannelFailure):
    """Not delivered; retrying on this channel cannot help (fall back to the next channel)."""


class DeliveryUnknown(ChannelFailure):
    """The request left but no verdict came back: it may have been delivered. Never auto-repeat."""

    may_have_been_delivered = True


class Channel:
    """What the notifications service sees of every channel."""

    name: str = ""

    def send(self, address: str, subject: str, body: str) -> str:
        """Deliver one message; return a receipt or raise a `ChannelFailure` subclass."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of what the channel keeps open between sends (the service is stopping)."""


# --- redaction -----------------------------------------------------------------------------------

_EMAIL_LIKE = re.compile(r"[^\s<>\"'()\[\],;:]+@[^\s<>\"'()\[\],;:]+")
_DIGIT_RUN = re.compile(r"\+?\d[\d\s\-]{5,}\d")  # phone numbers, ID numbers (7+ digits)
_URL_QUERY = re.compile(r"(https?://[^\s?#]+)[?#][^\s]*")


def redact(text: object, limit: int = 120) -> str:
    """Endpoint text made safe to log: addresses, long digit runs and URL queries masked."""
    value = " ".join(str(text).split())
    value = _URL_QUERY.sub(r"\1?…", value)
    value = _EMAIL_LIKE.sub("<address>", value)
    value = _DIGIT_RUN.sub("<number>", value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def one_text(subject: str, body: str) -> str:
    """Channels without a subject line (SMS, robots) carry the subject as the first line."""
    subject, body = (subject or "").strip(), (body or "").strip()
    return f"{subject}\n{body}" if subject and body else subject or body


# --- e-mail --------------------------------------------------------------------------------------

class _StaleSession(Exception):
    """A kept SMTP session the server had closed meanwhile: nothing was sent on it."""


class EmailChannel(Channel):
    """SMTP submission to ORGLIFE_SMTP_URL (`smtp://host:port`), UTF-8 subject and body.

    The dialog is driven step by step (EHLO, MAIL, RCPT, DATA) rather than with `sendmail`, so a
    failure can be placed: before DATA nothing can have been delivered (temporary or permanent by
    the reply code); once the message content is on its way, a timeout or a dropped connection
    leaves the outcome unknown.

    A session that delivered a message is kept open for the next one (at most KEEP of them,
    none idle longer than IDLE_SECONDS), as mail submitters do: a message then waits for its
    envelope and content only, not for a connection, a greeting and a QUIT too (three round
    trips fewer to a distant relay). A kept session the server has closed fails at MAIL,
    before anything is sent, and the message goes once more on a new one. Any failure
    closes its session.
    """

    name = "email"
    KEEP = 32  # as many as the sender has sends in flight (service.py Sender.CONCURRENCY)
    IDLE_SECONDS = 10.0

    def __init__(self, smtp_url: str, sender: str = DEFAULT_SENDER, timeout: float = READ_TIMEOUT,
                 helo_name: str | None = None):
        parts = urlsplit(smtp_url)
        if parts.scheme != "smtp" or not parts.hostname:
            raise ValueError("ORGLIFE_SMTP_URL must look like smtp://host:port")
        self.host = parts.hostname
        self.port = parts.port or 25
        if "\r" in sender or "\n" in sender:
            raise ValueError("ORGLIFE_MAIL_FROM must be one line")
        self.sender = sender
        self._domain = sender.rpartition("@")[2].strip(" >") or "localhost"
        name, sender_address = email.utils.parseaddr(sender)
        self._from_header = email.utils.formataddr((name, sender_address), charset="utf-8")
        self.timeout = timeout
        # socket.getfqdn() (smtplib's default) asks DNS and can hang a host without one.
        self.helo_name = helo_name or socket.gethostname() or "localhost"
        self._kept: list[tuple[float, smtplib.SMTP]] = []  # (idle since, greeted session)
        self._lock = threading.Lock()
        self._closed = False  # after close(), a session that finishes is ended, not kept

    def send(self, address: str, subject: str, body: str) -> str:
        if not _looks_like_email(address):
            raise _logged(PermanentFailure("email: not a valid e-mail address"))
        raw, message_id = self._compose(address, subject, body)
        kept = self._take_kept()
        if kept is not None:
            try:
                code = self._transact(kept, address, raw, reused=True)
            except _StaleSession:
                code = self._transact(self._connect(), address, raw, reused=False)
        else:
            code = self._transact(self._connect(), address, raw, reused=False)
        receipt = f"email: accepted (SMTP {code}) as {message_id}"
        log.debug("%s", receipt)  # in the notification's history; an INFO line cost 6% of a send
        return receipt

    def _transact(self, smtp: smtplib.SMTP, address: str, raw: bytes, reused: bool) -> int:
        """One message on this session; the session is kept after a success, closed after a
        failure. Raises _StaleSession when a kept session turns out closed before MAIL."""
        stage = "envelope"
        try:
            if not reused:
                code, reply = smtp.ehlo()
                if not 200 <= code < 300:
                    code, reply = smtp.helo()
                    _check_reply(code, reply, "greeting refused")
            try:
                code, reply = smtp.mail(self.sender)
            except (OSError, smtplib.SMTPServerDisconnected):
                if reused:
                    smtp.close()
                    raise _StaleSession() from None
                raise
            if reused and code == 421:  # the server is closing this session: a new one
                _quit_quietly(smtp)
                raise _StaleSession()
            _check_reply(code, reply, "sender refused")
            _check_reply(*smtp.rcpt(address), "recipient refused")
            stage = "content"
            code, reply = smtp.data(raw)
            _check_reply(code, reply, "message refused")
        except _StaleSession:
            raise
        except smtplib.SMTPResponseException as exc:  # the server said no: nothing delivered
            _quit_quietly(smtp)
            raise _logged(_failure_for_code(exc.smtp_code, f"email: {stage} refused",
                                            exc.smtp_error)) from None
        except ChannelFailure as exc:
            _quit_quietly(smtp)
            raise _logged(exc) from None
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()  # no QUIT on a broken or silent connection: it would wait again
            if stage == "content":
                raise _logged(DeliveryUnknown(
                    f"email: connection lost while sending the message ({type(exc).__name__})"
                )) from None
            raise _logged(TemporaryFailure(
                f"email: connection lost before the message was sent ({type(exc).__name__})"
            )) from None
        self._keep(smtp)
        return code

    def _take_kept(self) -> smtplib.SMTP | None:
        """The most recently used kept session, dropping those idle too long."""
        with self._lock:
            cutoff = time.monotonic() - self.IDLE_SECONDS
            stale = [smtp for since, smtp in self._kept if since < cutoff]
            self._kept = [(since, smtp) for since, smtp in self._kept if since >= cutoff]
            smtp = self._kept.pop()[1] if self._kept else None
        for old in stale:
            old.close()  # no QUIT: after this long the server may be gone, and QUIT would wait
        return smtp

    def _keep(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if not self._closed and len(self._kept) < self.KEEP:
                self._kept.append((time.monotonic(), smtp))
                return
        _quit_quietly(smtp)

    def close(self) -> None:
        """QUIT every kept session (the service is stopping), waiting a second at most on
        each: a server that went silent must not hold the stop."""
        with self._lock:
            kept, self._kept, self._closed = self._kept, [], True
        for _, smtp in kept:
            if smtp.sock is not None:
                smtp.sock.settimeout(1.0)
            _quit_quietly(smtp)

    def _connect(self) -> smtplib.SMTP:
        try:
            return smtplib.SMTP(self.host, self.port, local_hostname=self.helo_name,
                                timeout=self.timeout)
        except smtplib.SMTPResponseException as exc:  # a 4xx/5xx greeting
            raise _logged(_failure_for_code(exc.smtp_code, "email: server refused the connection",
                                            exc.smtp_error)) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise _logged(TemporaryFailure(
                f"email: cannot reach the SMTP server ({type(exc).__name__})")) from None

    def _compose(self, address: str, subject: str, body: str) -> tuple[bytes, str]:
        """The message as SMTP carries it: UTF-8 text in base64 (any server takes it,
        8BITMIME or not, and Chinese survives intact), the subject in RFC 2047 words.
        Written out here rather than built with email.message.EmailMessage, whose header
        registry took a sixth of the service's time in bench/county_year.py for a message
        that is always the same shape; tests/notifications/test_channels.py reads it back
        with the standard parser."""
        message_id = email.utils.make_msgid(domain=self._domain)
        subject = " ".join((subject or "").split())  # no header injection via CR/LF
        head = (f"From: {self._from_header}\r\n"
                f"To: {address}\r\n"
                f"Subject: {_header_words(subject)}\r\n"
                f"Date: {email.utils.formatdate(localtime=True)}\r\n"
                f"Message-ID: {message_id}\r\n"
                "MIME-Version: 1.0\r\n"
                'Content-Type: text/plain; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: base64\r\n\r\n")
        content = base64.encodebytes((body or "").encode("utf-8")).replace(b"\n", b"\r\n")
        return head.encode("ascii") + content, message_id


def _header_words(text: str) -> str:
    """A header value in ASCII: as it is when it is plain ASCII, otherwise UTF-8 encoded
    words, folded to lines SMTP accepts."""
    charset = "us-ascii" if text.isascii() and "=?" not in text else "utf-8"
    return email.header.Header(text, charset, header_name="Subject").encode(linesep="\r\n")


def _looks_like_email(address: str) -> bool:
    if not isinstance(address, str) or not address.isascii():
        return False
    local, at, domain = address.partition("@")
    return bool(at and local and "." in domain.strip(".") and "@" not in domain
                and not any(ch.isspace() or ch in "<>,;\"" for ch in address))


def _check_reply(code: int, reply: bytes, what: str) -> None:
    if not 200 <= code < 400:
        raise _failure_for_code(code, f"email: {what}", reply)


def _failure_for_code(code: int, what: str, reply: bytes | str | None) -> ChannelFailure:
    """SMTP reply codes: 4xx means try again later, 5xx means never (RFC 5321 §4.2.1)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else (reply or "")
    detail = f"{what} (SMTP {code}: {redact(text, 80)})"
    return TemporaryFailure(detail) if 400 <= code < 500 else PermanentFailure(detail)


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """QUIT after the verdict is known: its own failure changes nothing about the message."""
    try:
        smtp.quit()
    except Exception:  # noqa: BLE001 - the outcome is already decided
        pass
    finally:
        smtp.close()


# --- HTTP endpoints ------------------------------------------------------------------------------

@dataclass(frozen=True)
class HttpAnswer:
    """An endpoint's answer, read whole: status, headers (read case-insensitively) and body."""

    status_code: int
    headers: http.client.HTTPMessage
    content: bytes

    def json(self):
        """The body as JSON; ValueError when it is none."""
        return json.loads(self.content.decode("utf-8"))


class JsonPoster:
    """POSTs one JSON body and turns transport trouble into the right outcome.

    "Could the request have left?" has a plain answer: not if the connection was never made.
    A new connection is made first, on its own (within the connect timeout: TCP, a proxy's
    tunnel, TLS), and only then is the request written, so the two kinds of failure are told
    apart by where they happen rather than by reading a library's exception. Plain
    http.client: requests cost three times the CPU per message (bench/county_year.py), for
    features a POST to a gateway does not use; the environment's proxies and CA bundle are
    still followed (_environment_settings).

    With `keep`, a connection whose answer was read whole is kept for the next POST to the
    same place (at most `keep`, none idle longer than IDLE_SECONDS): no new TCP and TLS
    handshake per SMS. One the server has closed meanwhile is seen before use (its socket
    reads as ready) and dropped. Should it close in the instant between that look and the
    request, the message is `unknown`, never sent twice: a POST is not repeated on a guess.
    IDLE_SECONDS stays under common servers' keep-alive timeouts (Apache's 5 s) to keep that
    instant rare.
    """

    MAX_ANSWER = 1 << 20  # bytes of an answer read: gateways and robots answer in a few dozen
    IDLE_SECONDS = 4.0

    def __init__(self, label: str, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT, keep: int = 0):
        self.label = label
        self.timeout = (connect_timeout, read_timeout)
        self.keep = keep
        self._kept: dict[tuple, list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()
        self._closed = False  # after close(), a connection that finishes is closed, not kept

    def post(self, url: str, payload: dict) -> HttpAnswer:
        fresh, target, headers = self._connection(url)
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
        where = _destination(fresh)
        connection = self._take_kept(where) if self.keep else None
        if connection is None:
            connection = fresh
            if not self.keep:
                headers["Connection"] = "close"
            try:
                connection.connect()
            except TimeoutError:
                connection.close()  # a proxy's tunnel or TLS may have had a socket open
                raise TemporaryFailure(f"{self.label}: connect timeout") from None
            except (OSError, http.client.HTTPException) as exc:
                # refused, no such host, a proxy's refusal or garbage, TLS: nothing sent
                connection.close()
                raise TemporaryFailure(f"{self.label}: cannot connect "
                                       f"({type(exc).__name__})") from None
        try:
            connection.sock.settimeout(self.timeout[1])
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read(self.MAX_ANSWER)
        except TimeoutError:
            connection.close()
            raise DeliveryUnknown(f"{self.label}: no answer within {self.timeout[1]:g} s "
                                  f"after sending") from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise DeliveryUnknown(f"{self.label}: connection lost after sending "
                                  f"({type(exc).__name__})") from None
        lengths = response.headers.get_all("Content-Length") or []
        if len(set(lengths)) > 1 or not all(value.strip().isdigit() for value in lengths):
            connection.close()
            # an answer that cannot be read came after the request left
            raise DeliveryUnknown(f"{self.label}: malformed answer after sending")
        if response.status < 200:
            # http.client passes over 100 only: another interim answer (102, 103) stood for
            # the verdict, and the real one would be read as the next message's
            connection.close()
            raise DeliveryUnknown(f"{self.label}: an interim answer (HTTP {response.status}) "
                                  f"only, after sending")
        idle = _idle_limit(response, self.IDLE_SECONDS)
        if self.keep and idle and response.isclosed() and not response.will_close:
            self._keep(where, connection, idle)  # read whole, and the server keeps it open
        else:
            connection.close()
        return HttpAnswer(response.status, response.headers, content)

    def _take_kept(self, where: tuple) -> http.client.HTTPConnection | None:
        """The most recently used kept connection to `where` that is still open."""
        while True:
            now = time.monotonic()
            with self._lock:
                kept = self._kept.get(where) or []
                stale = [connection for until, connection in kept if until <= now]
                kept[:] = [(until, connection) for until, connection in kept if until > now]
                connection = kept.pop()[1] if kept else None
            for old in stale:
                old.close()
            if connection is None or not _closed_by_peer(connection):
                return connection
            connection.close()  # the server closed it (or talks out of turn): next one

    def _keep(self, where: tuple, connection: http.client.HTTPConnection,
              idle: float) -> None:
        with self._lock:
            kept = self._kept.setdefault(where, [])
            if not self._closed and len(kept) < self.keep:
                kept.append((time.monotonic() + idle, connection))  # usable until then
                return
        connection.close()

    def close(self) -> None:
        """Close every kept connection (the service is stopping)."""
        with self._lock:
            kept, self._kept, self._closed = self._kept, {}, True
        for connections in kept.values():
            for _, connection in connections:
                connection.close()

    def _connection(self, url: str):
        """(an unconnected connection, the request target, the headers) for this URL,
        through the environment's proxy for it if there is one. A URL that cannot be sent
        as it is (an address a secretary typed in, with Chinese in its query) is
        percent-encoded as requests did; one that still cannot is refused before anything
        is sent."""
        try:
            parts = urlsplit(url)
            port = parts.port  # ValueError for a port that is no number
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(parts.scheme)
            host = parts.hostname.encode("idna").decode("ascii")
            target = requests.utils.requote_uri(
                (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
            if not _sendable(host) or not _sendable(target):
                raise ValueError("url")
            settings = _environment_settings(parts.scheme, parts.netloc.rpartition("@")[2])
            proxy = settings["proxies"].get(parts.scheme) or settings["proxies"].get("all")
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "Accept": "application/json", "User-Agent": "orglife-notifications"}
            if parts.username:  # https://user:password@gateway/...
                headers["Authorization"] = _basic_credentials(parts)
            timeout = self.timeout[0]
            if proxy:
                proxy_parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
                if proxy_parts.scheme != "http" or not proxy_parts.hostname:
                    raise PermanentFailure(f"{self.label}: the environment's proxy for it is "
                                           f"not an http:// proxy")
                proxy_headers = ({"Proxy-Authorization": _basic_credentials(proxy_parts)}
                                 if proxy_parts.username else {})
                if parts.scheme == "http":  # the proxy gets the whole URL, without credentials
                    headers.update(proxy_headers)
                    where = f"[{host}]" if ":" in host else host  # an IPv6 literal
                    where = f"{where}:{port}" if port else where
                    return (http.client.HTTPConnection(proxy_parts.hostname,
                                                       proxy_parts.port or 80, timeout=timeout),
                            f"http://{where}{target}", headers)
                connection = http.client.HTTPSConnection(
                    proxy_parts.hostname, proxy_parts.port or 80, timeout=timeout,
                    context=_tls_context(settings["verify"]))
                connection.set_tunnel(host, port or 443, headers=proxy_headers)
                return connection, target, headers
            if parts.scheme == "http":
                return http.client.HTTPConnection(host, port or 80, timeout=timeout), \
                    target, headers
            return (http.client.HTTPSConnection(host, port or 443, timeout=timeout,
                                                 context=_tls_context(settings["verify"])),
                    target, headers)
        except (ValueError, http.client.InvalidURL):  # UnicodeError is a ValueError too
            raise PermanentFailure(f"{self.label}: not a usable endpoint URL") from None

    def check_status(self, response: HttpAnswer) -> None:
        """Raise unless the answer is 2xx. 504 is a proxy's read timeout: outcome unknown."""
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"{self.label}: HTTP {status}"
        if status == 429:
            raise TemporaryFailure(detail, retry_after=_retry_after(response))
        if status == 504:
            raise DeliveryUnknown(detail + " (gateway timeout: the request may have gone through)")
        if status >= 500:
            raise TemporaryFailure(detail, retry_after=_retry_after(response))
        raise PermanentFailure(detail)


def _destination(connection: http.client.HTTPConnection) -> tuple:
    """Where a connection leads: its class (TLS or not), host, port and tunnelled host."""
    return (type(connection), connection.host, connection.port,
            getattr(connection, "_tunnel_host", None), getattr(connection, "_tunnel_port", None))


_SELECT = eventlet.patcher.original("select")  # a real zero-wait look, not a green one


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """An idle kept connection has nothing to read; readable means the server closed it
    (or sent what nobody asked for): either way it is not used again."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        poller = _SELECT.poll()  # poll, not select: no limit on the descriptor's number
        poller.register(sock.fileno(), _SELECT.POLLIN | _SELECT.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _idle_limit(response: http.client.HTTPResponse, longest: float) -> float:
    """How long a connection may wait for the next message: `longest`, or less when the
    server says (`Keep-Alive: timeout=N`) that it closes sooner, a second early to stay
    clear of its close; 0 when that leaves nothing."""
    for part in (response.headers.get("Keep-Alive") or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "timeout":
            try:
                return max(0.0, min(longest, float(value) - 1.0))
            except ValueError:
                break
    return longest


@lru_cache(maxsize=256)
def _environment_settings(scheme: str, host: str) -> dict:
    """The environment's settings for this endpoint, as requests reads them (HTTP_PROXY,
    HTTPS_PROXY, ALL_PROXY, NO_PROXY; REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), read once: the
    process's environment does not change while it runs."""
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return {"proxies": requests.utils.get_environ_proxies(f"{scheme}://{host}/"),
            "verify": verify}


@lru_cache(maxsize=8)
def _tls_context(verify) -> ssl.SSLContext:
    """Certificates checked against the CA bundle requests would use (certifi's unless the
    environment names one), host names too."""
    if verify is True:
        import certifi
        return ssl.create_default_context(cafile=certifi.where())
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


def _sendable(text: str) -> bool:
    """Can stand in a request line as it is: ASCII, no spaces or control characters."""
    return bool(text) and text.isascii() and not any(ord(ch) < 33 or ord(ch) == 127
                                                     for ch in text)


def _basic_credentials(parts) -> str:
    """An Authorization (or Proxy-Authorization) value from a URL's user:password."""
    credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def _retry_after(response: HttpAnswer) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class SmsChannel(Channel):
    """An SMS gateway over HTTP: POST `{"phone", "text"}` to ORGLIFE_SMS_URL; 2xx = delivered."""

    name = "sms"
    KEEP = 32  # connections kept for the next SMS: as many as the sender has sends in flight

    def __init__(self, url: str, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT):
        self.url = url
        self.http = JsonPoster("sms", connect_timeout, read_timeout, keep=self.KEEP)

    def send(self, address: str, subject: str, body: str) -> str:
        phone = _normalized_phone(address)
        if phone is None:
            raise _logged(PermanentFailure("sms: not a valid phone number"))
        try:
            response = self.http.post(self.url, {"phone": phone, "text": one_text(subject, body)})
            self.http.check_status(response)
        except ChannelFailure as exc:
            raise _logged(exc) from None
        receipt = f"sms: accepted (HTTP {response.status_code})"
        log.debug("%s", receipt)
        return receipt

    def close(self) -> None:
        self.http.close()


def _normalized_phone(address: str) -> str | None:
    if not isinstance(address, str):
        return None
    phone = re.sub(r"[\s\-()]", "", address)
    return phone if re.fullmatch(r"\+?\d{5,20}", phone) else None


# --- work-chat robots ----------------------------------------------------------------------------

@dataclass(frozen=True)
class RobotFlavour:
    """One vendor's robot dialect: request shape, where the verdict is, and its limits."""

    name: str
    hosts: tuple[str, ...]
    limits: tuple[tuple[int, float], ...]  # (messages, seconds): all must hold
    rate_limit_codes: Mapping[int, float]  # verdict code → seconds the robot is blocked
    temporary_codes: frozenset[int] = frozenset({-1})  # "system busy"
    max_text_bytes: int | None = None
    feishu_shape: bool = False

    def payload(self, text: str) -> dict:
        if self.max_text_bytes is not None:
            text = _cut_utf8(text, self.max_text_bytes)
        if self.feishu_shape:
            return {"msg_type": "text", "content": {"text": text}}
        return {"msgtype": "text", "text": {"content": text}}

    def verdict(self, answer: dict) -> tuple[int | None, str]:
        """(code, message) from a 200 answer; code None when the answer has no verdict."""
        if self.feishu_shape:
            code = answer.get("code", answer.get("StatusCode"))
            message = answer.get("msg", answer.get("StatusMessage", ""))
        else:
            code, message = answer.get("errcode"), answer.get("errmsg", "")
        try:
            return (None if code is None else int(code)), str(message or "")
        except (TypeError, ValueError):
            return None, str(message or "")


DINGTALK = RobotFlavour(
    "dingtalk", ("oapi.dingtalk.com",), limits=((20, 60.0),),
    rate_limit_codes={130101: 600.0})  # over 20 a minute: blocked for 10 minutes
WECOM = RobotFlavour(
    "wecom", ("qyapi.weixin.qq.com",), limits=((20, 60.0),),
    rate_limit_codes={45009: 60.0, 45033: 60.0}, max_text_bytes=2048)
FEISHU = RobotFlavour(
    "feishu", ("open.feishu.cn", "open.larksuite.com"), limits=((100, 60.0), (5, 1.0)),
    rate_limit_codes={11232: 60.0, 99991400: 60.0}, feishu_shape=True)
FLAVOURS = {f.name: f for f in (DINGTALK, WECOM, FEISHU)}
_FLAVOUR_ALIASES = {"lark": "feishu", "wework": "wecom", "wechat_work": "wecom", "ding": "dingtalk"}


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    return (parts.hostname or "").lower(), port


def robot_hosts(config: Mapping) -> frozenset[str]:
    """Where robot messages may go: the vendors' robot hosts, the host (and port) of
    ORGLIFE_WEBHOOK_URL, and ORGLIFE_ROBOT_HOSTS (comma-separated `host` or `host:port`, for
    a county's own relay)."""
    allowed = {host for flavour in FLAVOURS.values() for host in flavour.hosts}
    if config.get("ORGLIFE_WEBHOOK_URL"):
        host, port = _host_port(config["ORGLIFE_WEBHOOK_URL"])
        allowed.add(f"{host}:{port}" if port else host)
    for entry in (config.get("ORGLIFE_ROBOT_HOSTS") or "").split(","):
        if entry.strip():
            allowed.add(entry.strip().lower())
    return frozenset(allowed)


def host_allowed(url: str, allowed: frozenset[str]) -> bool:
    """A host named bare allows any port of it; `host:port` that port only. Vendor hosts
    allow their subdomains."""
    host, port = _host_port(url)
    if not host or port == -1:
        return False
    if f"{host}:{port}" in allowed:
        return True
    return any(host == entry or host.endswith("." + entry)
               for entry in allowed if ":" not in entry)


def robot_flavour(url: str) -> RobotFlavour:
    """The vendor host decides; otherwise a `flavour=` query parameter; otherwise DingTalk."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    for flavour in FLAVOURS.values():
        if any(host == h or host.endswith("." + h) for h in flavour.hosts):
            return flavour
    named = (parse_qs(parts.query).get("flavour") or [""])[0].strip().lower()
    if not named:
        return DINGTALK
    named = _FLAVOUR_ALIASES.get(named, named)
    if named not in FLAVOURS:
        raise ValueError(f"unknown robot flavour {named!r} (dingtalk, wecom or feishu)")
    return FLAVOURS[named]


def _cut_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - len("…".encode())].decode("utf-8", "ignore") + "…"


def window_wait(sent, now: float, limits: tuple[tuple[int, float], ...]) -> float:
    """Seconds until one more send fits every (count, seconds) window, given the times of
    the sends so far (oldest first); 0.0 when it fits now."""
    wait = 0.0
    for count, seconds in limits:
        recent = [t for t in sent if t > now - seconds]
        if len(recent) >= count:
            wait = max(wait, recent[-count] + seconds - now)
    return wait


class SlidingWindowLimiter:
    """At most N sends in ANY window of S seconds, per key (a robot URL), in this process.

    Why not a refilling token bucket: one refilled at 20 a minute with a burst of 20 lets 40
    through in some 60-second windows, and DingTalk blocks a robot for 10 minutes past 20 a
    minute. Here each slot comes back exactly S seconds after it was used. `block` keeps every
    send off a robot the vendor has blocked, `release` returns the slot of a send that never
    left. Thread-safe (a green lock once monkey-patched); no I/O under the lock.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, deque] = {}
        self._blocked_until: dict[str, float] = {}

    def acquire(self, key: str, limits: tuple[tuple[int, float], ...]) -> float:
        """Take a slot and return 0.0, or take nothing and return the seconds until one frees."""
        with self._lock:
            now = self.clock()
            sent = self._sent.setdefault(key, deque())
            longest = max(seconds for _, seconds in limits)
            while sent and sent[0] <= now - longest:
                sent.popleft()
            wait = max(self._blocked_until.get(key, 0.0) - now, window_wait(sent, now, limits))
            if wait > 0:
                return wait
            sent.append(now)
            return 0.0

    def release(self, key: str) -> None:
        with self._lock:
            sent = self._sent.get(key)
            if sent:
                sent.pop()

    def block(self, key: str, seconds: float) -> None:
        with self._lock:
            until = self.clock() + seconds
            self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)


_PROCESS_LIMITER = SlidingWindowLimiter()  # shared by every RobotChannel of this process


class RobotChannel(Channel):
    """Work-chat group robots (DingTalk, WeCom, Feishu); the address is the robot's URL.

    A robot answers HTTP 200 even when it refuses a message: the verdict is the body's
    `errcode` / `code`, which must be 0 (KNOWN-TRAPS). Known rate-limit codes are temporary
    (and block the robot locally for as long as the vendor does), "system busy" (-1) is
    temporary, every other code (keyword or signature check 310000, bad token, content too
    long...) is permanent. The vendors' per-robot limits are kept before sending.
    """

    name = "robot"

    def __init__(self, default_url: str | None = None, limiter: SlidingWindowLimiter | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT,
                 allowed_hosts: frozenset[str] | None = None):
        self.default_url = default_url or None
        self.limiter = limiter or _PROCESS_LIMITER
        # None: any host (a channel built by hand); from the config: robot_hosts()
        self.allowed_hosts = allowed_hosts
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        if self.default_url:
            robot_flavour(self.default_url)  # a bad ORGLIFE_WEBHOOK_URL fails at start-up

    def send(self, address: str | None, subject: str, body: str) -> str:
        url = address or self.default_url
        try:
            return self._send(url, one_text(subject, body))
        except ChannelFailure as exc:
            raise _logged(exc) from None

    def _send(self, url: str | None, text: str) -> str:
        if not url:
            raise PermanentFailure("robot: no robot URL (organization robot_url or "
                                   "ORGLIFE_WEBHOOK_URL)")
        if urlsplit(url).scheme not in ("http", "https"):
            raise PermanentFailure("robot: not an http(s) robot URL")
        if self.allowed_hosts is not None and not host_allowed(url, self.allowed_hosts):
            # an organization's robot_url is typed in by a secretary: never a way to make this
            # service post to an internal address
            raise PermanentFailure("robot: host not allowed (vendor robots, the host of "
                                   "ORGLIFE_WEBHOOK_URL, or ORGLIFE_ROBOT_HOSTS)")
        try:
            flavour = robot_flavour(url)
        except ValueError as exc:
            raise PermanentFailure(f"robot: {exc}") from None
        label = f"robot {flavour.name}"
        wait = self.limiter.acquire(url, flavour.limits)
        if wait > 0:
            raise TemporaryFailure(f"{label}: rate limit reached, not sent",
                                   retry_after=round(wait, 3), attempted=False)
        http = JsonPoster(label, self.connect_timeout, self.read_timeout)
        try:
            response = http.post(url, flavour.payload(text))
        except TemporaryFailure:
            self.limiter.release(url)  # never reached the robot: the slot is still free
            raise
        if response.status_code == 429:
            self.limiter.block(url, _retry_after(response) or 60.0)
        http.check_status(response)
        return self._read_verdict(url, flavour, label, response)

    def _read_verdict(self, url: str, flavour: RobotFlavour, label: str,
                      response: HttpAnswer) -> str:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise DeliveryUnknown(f"{label}: HTTP {response.status_code} without a JSON verdict")
        code, message = flavour.verdict(answer)
        if code is None:
            raise DeliveryUnknown(f"{label}: HTTP {response.status_code} without an error code")
        detail = f"{label}: errcode {code} ({redact(message, 80)})"
        if code == 0:
            log.debug("%s: accepted", label)
            return f"{label}: accepted (errcode 0)"
        if code in flavour.rate_limit_codes:
            blocked = flavour.rate_limit_codes[code]
            self.limiter.block(url, blocked)
            raise TemporaryFailure(detail, retry_after=blocked)
        if code in flavour.temporary_codes:
            raise TemporaryFailure(detail)
        raise PermanentFailure(detail)


# --- in-app --------------------------------------------------------------------------------------

class InAppChannel(Channel):
    """The notification is already stored and listed (`list_notifications`): nothing to send.
    It is the last fallback, so it must never fail."""

    name = "in_app"

    def send(self, address: str, subject: str, body: str) -> str:
        return "in_app: stored"


# --- wiring --------------------------------------------------------------------------------------

def channels_from_config(config: Mapping) -> dict[str, Channel]:
    """The channels this deployment can use, by name.

    `email` and `sms` exist only when their endpoint is configured. `robot` always exists: its
    endpoints are the organizations' own `robot_url`s, with ORGLIFE_WEBHOOK_URL only as the
    default robot; with neither, a robot send is a PermanentFailure. `in_app` always exists.
    """
    channels: dict[str, Channel] = {}
    if config.get("ORGLIFE_SMTP_URL"):
        channels["email"] = EmailChannel(config["ORGLIFE_SMTP_URL"],
                                         sender=config.get("ORGLIFE_MAIL_FROM") or DEFAULT_SENDER)
    if config.get("ORGLIFE_SMS_URL"):
        channels["sms"] = SmsChannel(config["ORGLIFE_SMS_URL"])
    channels["robot"] = RobotChannel(config.get("ORGLIFE_WEBHOOK_URL") or None,
                                     allowed_hosts=robot_hosts(config))
    channels["in_app"] = InAppChannel()
    return channels


def _logged(failure: ChannelFailure) -> ChannelFailure:
    """Log a failure once, at the level its kind deserves (details are address-free)."""
    level = logging.INFO if isinstance(failure, TemporaryFailure) else logging.WARNING
    kind = {TemporaryFailure: "temporary", PermanentFailure: "permanent",
            DeliveryUnknown: "unknown"}.get(type(failure), "failure")
    log.log(level, "%s [%s]", failure.detail, kind)
    return failure
