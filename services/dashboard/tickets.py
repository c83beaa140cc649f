"""Signing in to the dashboard: the session cookie, and the one-time links the CLI prints.

The cookie holds a token of the deployment (SPEC §4: the same tokens and scopes as RPC),
HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it, so a forged
cross-site request carries no identity); `Secure` is added when the request came over HTTPS
(behind a TLS proxy: X-Forwarded-Proto). On plain http://127.0.0.1 a Secure cookie would be
refused by some browsers, so it is left out there.

`./orglife dashboard` prints `.../signin?ticket=T`: T is a short-lived JWT for the CLI's
identity with the audience `orglife-dashboard-signin`, which no service accepts as a token
(PyJWT refuses a token with an audience nobody asked for), redeemable once per dashboard
process. Redeeming it sets a session token (at most 12 hours, never beyond the CLI token's
own expiry) and redirects to a URL without the ticket.
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import jwt

from orglife.common.auth import ALGORITHM, Principal, decode_token, mint_token
from orglife.common.errors import Unauthorized

COOKIE = "orglife_session"
TICKET_AUDIENCE = "orglife-dashboard-signin"
TICKET_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=12)


def mint_ticket(secret: str, token: str, ttl: timedelta = TICKET_TTL) -> str:
    """A one-time sign-in ticket for the identity of `token` (the CLI's), valid `ttl` and
    never beyond the token's own expiry. Raises Unauthorized for a bad token."""
    principal = decode_token(secret, f"Bearer {token}")
    until = token_expiry(token)
    now = datetime.now(timezone.utc)
    claims = {"sub": principal.sub, "signin_role": principal.role, "aud": TICKET_AUDIENCE,
              "iat": now, "exp": min(now + ttl, until), "until": int(until.timestamp()),
              "jti": uuid.uuid4().hex}
    if principal.org_id:
        claims["org_id"] = principal.org_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def token_expiry(token: str) -> datetime:
    """The `exp` of a token already checked (read without checking again)."""
    claims = jwt.decode(token, options={"verify_signature": False, "verify_aud": False})
    return datetime.fromtimestamp(int(claims["exp"]), timezone.utc)


class Tickets:
    """Redeems tickets, each once in this process (their ids are kept until they expire)."""

    def __init__(self, secret: str):
        self.secret = secret
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def redeem(self, ticket: str) -> tuple[str, int]:
        """(a session token, its max-age in seconds) for a valid, unused ticket."""
        try:
            claims = jwt.decode(ticket, self.secret, algorithms=[ALGORITHM],
                                audience=TICKET_AUDIENCE,
                                options={"require": ["sub", "signin_role", "exp", "jti",
                                                     "until"]})
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"bad sign-in link: {exc}") from None
        with self._lock:
            now = time.time()
            self._used = {jti: exp for jti, exp in self._used.items() if exp > now}
            if claims["jti"] in self._used:
                raise Unauthorized("this sign-in link was used already: run ./orglife "
                                   "dashboard again for a new one")
            self._used[claims["jti"]] = float(claims["exp"])
        until = datetime.fromtimestamp(int(claims["until"]), timezone.utc)
        ttl = min(SESSION_TTL, until - datetime.now(timezone.utc))
        if ttl.total_seconds() < 60:
            raise Unauthorized("the token behind this sign-in link has expired")
        try:
            token = mint_token(self.secret, str(claims["sub"]), claims["signin_role"],
                               claims.get("org_id"), ttl=ttl)
        except ValueError as exc:  # an unknown role, a scoped role without its org
            raise Unauthorized(f"bad sign-in link: {exc}") from None
        return token, int(ttl.total_seconds())


def check_pasted(secret: str, token: str) -> tuple[str, Principal, int]:
    """A token pasted into the sign-in form: (the token as the cookie keeps it, whom it
    names, seconds it stays valid). Raises Unauthorized for a bad one."""
    token = (token or "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    principal = decode_token(secret, f"Bearer {token}")
    seconds = int((token_expiry(token) - datetime.now(timezone.utc)).total_seconds())
    return token, principal, max(seconds, 0)


def cookie_name(request) -> str:
    """The session cookie's name for the host and port the browser addressed. A browser
    keeps cookies per host, not per port: two dashboards on one host (two homes side by side
    on 8600 and 8601) would otherwise replace each other's session. Behind a reverse proxy,
    the host it forwards (X-Forwarded-Host) is the one the browser saw."""
    host = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip() or request.host
    head, _, port = host.rpartition(":")
    return f"{COOKIE}_{port}" if head and port.isdigit() else COOKIE


def session_token(request) -> str | None:
    return request.cookies.get(cookie_name(request))


def cookie_header(value: str, max_age: int, secure: bool, name: str = COOKIE) -> str:
    """Set-Cookie for the session (an empty value and max-age 0 clear it)."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
