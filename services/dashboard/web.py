"""The dashboard's HTTP edge on nameko 2.14's werkzeug server (after nameko-examples'
gateway): the `page` entrypoint, the server that binds the port and puts the session's token
into the context data, the one table mapping errors to HTTP statuses, security headers, and an
access log that never holds a query string (a sign-in link's ticket is one).
"""
from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
import time
from functools import partial
from pathlib import Path
from urllib.parse import quote, urlsplit

import eventlet
from eventlet.event import Event
from eventlet import wsgi
from nameko.constants import WEB_SERVER_CONFIG_KEY
from amqp.exceptions import ConnectionError as AMQPConnectionError
from kombu.exceptions import OperationalError
from nameko.exceptions import IncorrectSignature, MethodNotFound, RemoteError, UnknownService
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import BindAddress, WebServer, WsgiApp, parse_address
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as NoSuchPage
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Request, Response

from orglife.common.errors import (
    Conflict, Forbidden, NotFound, OrglifeError, Unauthorized, ValidationError,
)

from . import wording
from .reads import ReadTimeout
from .rendering import render
from .tickets import cookie_header, cookie_name, session_token

log = logging.getLogger("orglife.dashboard")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8600

# Every error a page can meet, and what the user gets: (HTTP status, title, whether the
# error's own message is shown). Looked up along the exception's class hierarchy; anything
# else is a 500 without a traceback (the traceback goes to the service's log).
ERRORS: dict[type, tuple[int, str, bool]] = {
    Unauthorized: (401, "请先登录", False),  # pages redirect to the sign-in form instead
    Forbidden: (403, "无权查看", False),
    NotFound: (404, "未找到", True),
    NoSuchPage: (404, "页面不存在", False),
    ValidationError: (400, "请求有误", True),
    MethodNotAllowed: (405, "不支持的请求方式", False),
    Conflict: (409, "数据冲突", True),
    UnknownService: (503, "服务未运行", False),
    ReadTimeout: (504, "服务未及时响应", False),
    RemoteError: (502, "服务出错", False),  # an unexpected error inside a service
    # a service of another version (a method it lacks, or with other arguments)
    MethodNotFound: (502, "服务版本不一致", False),
    IncorrectSignature: (502, "服务版本不一致", False),
    # the broker cannot be reached (kombu wraps socket errors in OperationalError)
    OperationalError: (503, "消息服务不可用", False),
    AMQPConnectionError: (503, "消息服务不可用", False),
    ConnectionError: (503, "消息服务不可用", False),
}
EXPECTED = tuple(cls for cls in ERRORS if issubclass(cls, Exception)
                 and not issubclass(cls, HTTPException))
DETAILS = {
    401: "登录已失效或未登录。",
    403: "此页面超出您的权限范围：乡镇党委只能查看本乡镇，支部书记只能查看本支部。",
    404: "没有找到要查看的组织、党员或页面。",
    405: "此地址不接受这种请求。",
    500: "系统出现错误，已记录在服务日志中。",
    502: "后台服务处理时出错，已记录在该服务的日志中。",
    503: "后台服务或消息服务（RabbitMQ）没有运行：请运行 ./orglife status 查看。",
    504: "后台服务没有及时响应，请稍后再试。",
}

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def error_status(exc: BaseException) -> tuple[int, str, bool]:
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return 500, "系统错误", False


def local_path(target: str | None, default: str = "/") -> str:
    """A redirect target from a form or a query: only a path of this site (never //host).
    Control characters are refused outright: browsers drop a tab or newline from a URL, so
    `/\t/evil.example` would become `//evil.example`."""
    if not target or any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in target):
        return default
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def error_response(exc: BaseException, request: Request | None) -> Response:
    """The page (or redirect) for an error, from ERRORS."""
    if isinstance(exc, RequestRedirect):
        return exc.get_response()
    status, title, show = error_status(exc)
    if status == 401 and request is not None and request.headers.get("HX-Request"):
        # A fragment (the health panel refreshing itself) must not swap the sign-in form
        # into the page: htmx takes the whole page there (HX-Redirect), back afterwards.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        here = local_path(current.path + (f"?{current.query}" if current.query else ""))
        expired = "&expired=1" if session_token(request) else ""
        response = Response("", status=401, headers={
            "HX-Redirect": f"/signin?next={quote(here, safe='')}{expired}"})
        response.headers["Set-Cookie"] = session_cookie(request, "", 0)
        return response
    if status == 401 and request is not None and request.method in ("GET", "HEAD"):
        here = request.full_path.rstrip("?") if request.query_string else request.path
        expired = "&expired=1" if session_token(request) else ""
        response = redirect(f"/signin?next={quote(here, safe='')}{expired}")
        response.headers["Set-Cookie"] = session_cookie(request, "", 0)
        return response
    if status in (500, 502):  # a bug here or in a service: the traceback goes to the log
        log.error("%s %s failed: %s: %s", request.method if request else "-",
                  request.path if request else "-", type(exc).__name__, exc,
                  exc_info=status == 500 and not isinstance(exc, HTTPException))
    elif status in (503, 504):  # the page says "run ./orglife status"; the log says what
        log.warning("%s %s: %d, %s: %s", request.method if request else "-",
                    request.path if request else "-", status, type(exc).__name__, exc)
    detail = str(exc) if show else ""
    if isinstance(exc, ValidationError):
        detail = wording.invalid(exc.errors)
    elif isinstance(exc, NotFound):
        detail = wording.not_found(exc)
    html = render("error.html", status=status, title=title, detail=detail,
                  explanation=DETAILS.get(status, ""), user=None)
    response = Response(html, status=status, content_type="text/html; charset=utf-8")
    if status == 401 and request is not None:
        response.headers["Set-Cookie"] = session_cookie(request, "", 0)
    return response


def redirect(location: str, status: int = 303) -> Response:
    return Response("", status=status, headers={"Location": location})


def session_cookie(request: Request, token: str, max_age: int) -> str:
    """Set-Cookie for this browser's session on this dashboard (tickets.cookie_name)."""
    return cookie_header(token, max_age, is_secure(request), cookie_name(request))


def is_secure(request: Request | None) -> bool:
    if request is None:
        return False
    return request.scheme == "https" or \
        request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def same_origin(request: Request) -> bool:
    """A form POST from this site's own pages (Origin, else Referer, names this host); a
    browser sends Origin on every POST, so a cross-site form is refused (CSRF), on top of
    SameSite=Strict. Behind a reverse proxy the Host it forwards may be its upstream's: the
    proxy's X-Forwarded-Host counts too (a cross-site form cannot set headers), and so does
    any origin listed in ORGLIFE_DASHBOARD_ORIGINS ("https://orglife.example.gov.cn,...")."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True  # not a browser (curl, a test client): nothing to forge
    from urllib.parse import urlsplit
    netloc = urlsplit(origin).netloc
    forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    listed = {urlsplit(item.strip()).netloc or item.strip()
              for item in os.environ.get("ORGLIFE_DASHBOARD_ORIGINS", "").split(",")
              if item.strip()}
    return bool(netloc) and netloc in {request.host, forwarded, *listed}


def secure_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")  # a ticket never leaks to another site
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")  # pages hold personal data
    return response


class DashboardApp(WsgiApp):
    """nameko's WSGI app, with routing errors as pages, security headers and an access log
    of method, path (never the query), status and milliseconds."""

    def __call__(self, environ, start_response):
        started = time.monotonic()
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = error_response(exc, request)
        secure_headers(response)
        log.info("%s %s %s %.0fms", request.method, request.path, response.status_code,
                 (time.monotonic() - started) * 1000)
        return response(environ, start_response)


class DashboardServer(WebServer):
    """nameko's WebServer, binding ORGLIFE_DASHBOARD_HOST:ORGLIFE_DASHBOARD_PORT (default
    127.0.0.1:8600; nameko's WEB_SERVER_ADDRESS in the config wins). When the default port is
    taken (another home's dashboard) it takes a free one; a port that was asked for must be
    free. Never SO_REUSEPORT: eventlet sets it by default, and two dashboards would then
    share a port, each getting some of the other's requests. The URL it listens on is written
    to ORGLIFE_HOME/run/dashboard.url for `./orglife dashboard`."""

    def chosen_address(self) -> tuple[BindAddress, bool]:
        """(address, whether it was asked for explicitly)."""
        config = self.container.config
        if config.get(WEB_SERVER_CONFIG_KEY):
            return parse_address(config[WEB_SERVER_CONFIG_KEY]), True
        host = os.environ.get("ORGLIFE_DASHBOARD_HOST") or DEFAULT_HOST
        port = os.environ.get("ORGLIFE_DASHBOARD_PORT")
        return BindAddress(host, int(port) if port else DEFAULT_PORT), bool(port)

    @property
    def bind_addr(self):
        return self.chosen_address()[0]

    def start(self):
        if self._starting:
            return
        self._starting = True
        address, fixed = self.chosen_address()
        try:
            self._sock = eventlet.listen(tuple(address), reuse_port=False)
        except OSError as exc:
            if fixed or exc.errno != errno.EADDRINUSE:
                raise
            log.warning("port %s is in use (another dashboard?): listening on a free port",
                        address.port)
            self._sock = eventlet.listen((address.address, 0), reuse_port=False)
        self._sock.settimeout(None)
        self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
        self._gt = self.container.spawn_managed_thread(self.run)
        self.url = self.write_url()

    def write_url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        url = f"http://{shown}:{port}"
        log.info("dashboard listening on %s", url)
        home = self.container.config.get("ORGLIFE_HOME")
        if home:
            run = Path(home) / "run"
            run.mkdir(parents=True, exist_ok=True)
            target = run / "dashboard.url"
            tmp = run / f".dashboard.url.{os.getpid()}"
            tmp.write_text(url + "\n")
            tmp.replace(target)
        return url

    def get_wsgi_app(self):
        return DashboardApp(self)

    def get_wsgi_server(self, sock, wsgi_app, protocol=None, debug=False):
        from nameko.web.server import HttpOnlyProtocol
        return wsgi.Server(sock, sock.getsockname(), wsgi_app,
                           protocol=protocol or HttpOnlyProtocol, debug=False,
                           log=logging.getLogger("orglife.dashboard.wsgi"),
                           log_output=False)  # its access lines would hold query strings

    def context_data_from_headers(self, request):
        """The session cookie's token, as every RPC of the request carries it (nameko
        forwards context data to the services it calls; for HTTP it puts nothing there)."""
        token = session_token(request)
        return {"authorization": f"Bearer {token}"} if token else {}


class PageHandler(HttpRequestHandler):
    """`@page(method, url)`: a worker per request on DashboardServer; whatever it raises
    becomes a page through ERRORS."""

    server = DashboardServer()

    def __init__(self, method, url, **kwargs):
        kwargs.setdefault("expected_exceptions", EXPECTED)
        super().__init__(method, url, **kwargs)

    def handle_request(self, request):
        request.shallow = False
        try:
            context_data = self.server.context_data_from_headers(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            event = Event()
            self.container.spawn_worker(self, args, kwargs, context_data=context_data,
                                        handle_result=partial(self.handle_result, event))
            result = event.wait()
            return self.response_from_result(result)
        except Exception as exc:  # noqa: BLE001 - every failure is a page (ERRORS)
            return error_response(exc, request)


def answered(method):
    """A page method whose failures are answered inside the worker (error_response, from
    ERRORS): nameko would otherwise log every 401, 403 and 404 with a traceback."""
    @functools.wraps(method)
    def wrapper(self, request, *args, **kwargs):
        try:
            return method(self, request, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is a page (ERRORS)
            return error_response(exc, request)
    wrapper.__signature__ = inspect.signature(method)  # nameko checks the arguments by it
    return wrapper


def page(method: str, url: str, **kwargs):
    """`@page("GET", "/org/<org_id>")`: nameko's `@http` on DashboardServer, errors as
    pages."""
    def decorate(function):
        return PageHandler.decorator(method, url, **kwargs)(answered(function))
    return decorate

__all__ = ["ERRORS", "OrglifeError", "page", "error_response", "redirect", "local_path"]
