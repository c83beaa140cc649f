"""dashboard: the web page for county and township admins and branch secretaries (SPEC §4).

An edge in the shape of nameko-examples' gateway: thin `@page` (nameko `@http`) entrypoints
that read through RPC with the signed-in user's token (reads.py), turn the answers into pages
(pages.py) rendered by Jinja2 (templates/), and map errors to HTTP statuses in one table
(web.ERRORS). It owns no database and publishes no events; each service it reads checks the
user's scope, so a page outside it answers 403.

    GET  /                         where the user starts (their county, township or branch)
    GET  /signin[?ticket=...]      the sign-in form; a link from `./orglife dashboard`
    POST /signin, POST /signout    set or clear the session cookie
    GET  /org/ORG                  a county's or township's overview
    GET  /branch/BRANCH            a branch: slots, meetings, members and points
    GET  /member/MEMBER            a member: participation and score line by line
    GET  .../export/TABLE.xlsx     any table of those pages as a spreadsheet
    GET  /panel/health             the system's health (the overview refreshes it)
    GET  /static/...               style, script, vendored htmx and ECharts
"""
from __future__ import annotations

from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Response

from orglife.common.auth import decode_token
from orglife.common.clock import ClockProvider
from orglife.common.errors import Forbidden, Unauthorized
from orglife.common.rpc import rpc
from orglife.common.rules import RulesProvider
from orglife.common.topology import system_of

from . import pages
from .present import sheet_name, xlsx_bytes
from .reads import Services
from .rendering import render
from .schemas import PeriodArgs, SigninForm, check_id, check_table, load_args
from .static_files import StaticFiles
from .tickets import Tickets, check_pasted, session_token
from .web import local_path, page, redirect, same_origin, session_cookie

# The services the dashboard reads from; the system declaration lists the same (`calls`),
# which gives its broker account the right to call them and nothing else.
CALLS = ("members", "meetings", "scoring", "notifications")
HTML = "text/html; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Site(DependencyProvider):
    """What every request needs besides the reads: the deployment's secret (to check the
    session and redeem sign-in links), the static files, the broker URI and the system
    declaration (for the health panel)."""

    def setup(self):
        config = self.container.config
        self.secret = config.get("ORGLIFE_SECRET") or ""
        if not self.secret:
            raise RuntimeError("ORGLIFE_SECRET is empty: refusing to accept any token")
        self.tickets = Tickets(self.secret)
        self.static = StaticFiles()
        self.amqp_uri = config["AMQP_URI"]
        self.system = system_of(config)

    def get_dependency(self, worker_ctx):
        return self

    def principal(self, request):
        """The signed-in user (Unauthorized: the page redirects to the sign-in form)."""
        token = session_token(request)
        if not token:
            raise Unauthorized("not signed in")
        return decode_token(self.secret, f"Bearer {token}")


class DashboardService:
    name = "dashboard"

    reads = Services(CALLS)
    site = Site()
    clock = ClockProvider()
    rules = RulesProvider()

    @rpc
    def health(self):
        """Liveness for `orglife up/status` (no token, no personal data). It has no outbox:
        its backlog is always 0."""
        return {"service": self.name, "ok": True, "outbox_backlog": 0}

    # -- signing in and out ---------------------------------------------------------------
    @page("GET", "/signin")
    def signin_page(self, request):
        ticket = request.args.get("ticket")
        if ticket:  # a link from ./orglife dashboard: redeem it, then drop it from the URL
            try:
                token, max_age = self.site.tickets.redeem(ticket)
            except Unauthorized as exc:
                return self._signin_form(request, error=_why(exc), status=401)
            response = redirect(local_path(request.args.get("next")))
            response.headers["Set-Cookie"] = session_cookie(request, token, max_age)
            return response
        notice = ("登录已失效，请重新登录。" if request.args.get("expired")
                  else "已退出登录。" if request.args.get("signed_out") else "")
        return self._signin_form(request, notice=notice)

    @page("POST", "/signin")
    def signin(self, request):
        if not same_origin(request):
            raise Forbidden("cross-site sign-in refused")
        form = load_args(SigninForm(), request.form)
        try:
            token, _, max_age = check_pasted(self.site.secret, form["token"])
        except Unauthorized as exc:
            return self._signin_form(request, error=_why(exc), status=401,
                                     next_=form["next"])
        response = redirect(local_path(form["next"]))
        response.headers["Set-Cookie"] = session_cookie(request, token, max_age)
        return response

    @page("POST", "/signout")
    def signout(self, request):
        if not same_origin(request):
            raise Forbidden("cross-site sign-out refused")
        response = redirect("/signin?signed_out=1")
        response.headers["Set-Cookie"] = session_cookie(request, "", 0)
        return response

    def _signin_form(self, request, error="", notice="", status=200, next_=None):
        html = render("signin.html", error=error, notice=notice, user=None,
                      next=local_path(next_ or request.args.get("next")))
        return Response(html, status=status, content_type=HTML)

    # -- pages ------------------------------------------------------------------------------
    @page("GET", "/")
    def home(self, request):
        principal = self.site.principal(request)
        return self._show(request, principal, pages.landing(
            self.reads, principal, self._period(request)))

    @page("GET", "/org/<org_id>")
    def overview_page(self, request, org_id):
        principal = self.site.principal(request)
        return self._show(request, principal, self._overview(request, principal, org_id))

    @page("GET", "/org/<org_id>/export/<table>.xlsx")
    def overview_export(self, request, org_id, table):
        principal = self.site.principal(request)
        return self._export(self._overview(request, principal, org_id), table, org_id)

    @page("GET", "/branch/<branch_id>")
    def branch_page(self, request, branch_id):
        principal = self.site.principal(request)
        return self._show(request, principal, self._branch(request, principal, branch_id))

    @page("GET", "/branch/<branch_id>/export/<table>.xlsx")
    def branch_export(self, request, branch_id, table):
        principal = self.site.principal(request)
        return self._export(self._branch(request, principal, branch_id), table, branch_id)

    @page("GET", "/member/<member_id>")
    def member_page(self, request, member_id):
        principal = self.site.principal(request)
        return self._show(request, principal, self._member(request, principal, member_id))

    @page("GET", "/member/<member_id>/export/<table>.xlsx")
    def member_export(self, request, member_id, table):
        principal = self.site.principal(request)
        return self._export(self._member(request, principal, member_id), table, member_id)

    @page("GET", "/panel/health")
    def health_panel(self, request):
        principal = self.site.principal(request)
        view = pages.Page("系统运行状态", "health.html")
        pages.add_health(view, self._health())
        if request.headers.get("HX-Request"):
            html = render("_health.html", page=view)
            return Response(html, content_type=HTML)
        return self._show(request, principal, view)

    @page("GET", "/panel/health/export/<table>.xlsx")
    def health_export(self, request, table):
        self.site.principal(request)
        view = pages.Page("系统运行状态", "health.html")
        pages.add_health(view, self._health())
        return self._export(view, table, "system")

    @page("GET", "/static/<path:path>")
    def static(self, request, path):
        return self.site.static.response(request, path)

    # -- helpers -----------------------------------------------------------------------------
    def _period(self, request) -> pages.Period:
        return pages.period_of(load_args(PeriodArgs(), request.args), self.clock.today())

    def _overview(self, request, principal, org_id):
        return pages.overview(self.reads, principal, check_id("org_id", org_id),
                              self._period(request), self.clock.tz, health=self._health,
                              rules=self.rules)

    def _branch(self, request, principal, branch_id):
        return pages.branch(self.reads, principal, check_id("branch_id", branch_id),
                            self._period(request), self.clock.tz, self.rules)

    def _member(self, request, principal, member_id):
        return pages.member(self.reads, principal, check_id("member_id", member_id),
                            self._period(request), self.clock.tz, self.rules)

    def _health(self):
        return pages.system_health(self.reads, self.site.amqp_uri, self.site.system)

    def _show(self, request, principal, view: pages.Page):
        if view.redirect:
            return redirect(view.redirect, 302)
        html = render(view.template, page=view, user=principal, path=request.path,
                      query=request.query_string.decode("latin-1"))
        return Response(html, content_type=HTML)

    def _export(self, view: pages.Page, table: str, ident: str):
        if view.redirect:
            raise_not_found(table)
        check_table(table)
        if table not in view.tables:
            raise_not_found(table)
        chosen = view.tables[table]
        body = xlsx_bytes([chosen])
        name = sheet_name(ident, chosen.title, _period_label(view)) + ".xlsx"
        from urllib.parse import quote
        return Response(body, content_type=XLSX, headers={
            "Content-Disposition": f"attachment; filename=\"{table}.xlsx\"; "
                                   f"filename*=UTF-8''{quote(name)}"})


def raise_not_found(table: str):
    from orglife.common.errors import NotFound
    raise NotFound(f"table {table!r} not found")


def _period_label(view: pages.Page) -> str:
    period = view.data.get("period")
    if period is None:
        return ""
    return f"{period.year}" + (f"-截至{period.as_of.isoformat()}" if period.as_of else "")


def _why(exc: Exception) -> str:
    text = str(exc)
    if "expired" in text.lower():
        return "令牌已过期，请重新获取。"
    if "used already" in text:
        return "此登录链接已使用过，请重新运行 ./orglife dashboard 获取新链接。"
    if "sign-in link" in text:
        return "登录链接无效或已过期，请重新运行 ./orglife dashboard 获取新链接。"
    return "令牌无效：请粘贴本系统签发的完整令牌（./orglife token --role ...）。"
