"""Authentication and scope (SPEC §4): JWTs in nameko context data, checked in one place.

Every RPC carries `authorization: "Bearer <token>"`. `@authorized(roles...)` on an entrypoint
checks the token and the role before the method body runs; the use case then checks the scope
of the data it touches with one call, `principal.check_scope(path, what)`, where `path` is the
org ids from the county down to the record's organization, and limits list queries with
`principal.scope_filter(column)`. Work no caller asked for (intake from peer systems, events)
runs as `SYSTEM`, which covers everything.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt
from nameko.extensions import DependencyProvider

from .errors import Forbidden, Unauthorized

ROLES = ("county_admin", "township_admin", "branch_secretary", "service")
SYSTEM_ROLE = "system"  # never in a token: the service itself acting on a peer's report
SCOPED_ROLES = ("township_admin", "branch_secretary")
ADMINS = ("county_admin", "township_admin", "branch_secretary")
READERS = ADMINS + ("service",)
ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    sub: str
    role: str
    org_id: str | None = None

    def covers(self, path) -> bool:
        """True when the organization at the end of `path` is inside this caller's scope."""
        if self.org_id is None:
            return self.role not in SCOPED_ROLES
        return self.org_id in path

    def check_scope(self, path, what: str = "this organization") -> None:
        """Raise Forbidden unless the record at the end of `path` is in this caller's scope."""
        if not self.covers(path):
            raise Forbidden(f"{what} is outside the scope of {self.role} "
                            f"{self.org_id or ''}".strip())

    def scope_filter(self, path_column):
        """SQL condition keeping rows whose `path_column` ("/c1/t1/b1/") is in scope, or None
        for a caller who sees everything."""
        if self.org_id is None:
            return None
        from .db import under
        return under(path_column, self.org_id)

    def limit(self, query, path_column):
        """`query` limited to this caller's subtree."""
        condition = self.scope_filter(path_column)
        return query if condition is None else query.where(condition)


SYSTEM = Principal(sub="orglife", role=SYSTEM_ROLE)


def mint_token(secret: str, sub: str, role: str, org_id: str | None = None,
               ttl: timedelta = timedelta(days=30)) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role in SCOPED_ROLES and not org_id:
        raise ValueError(f"role {role} needs an organization (--org)")
    now = datetime.now(timezone.utc)
    claims = {"sub": sub, "role": role, "iat": now, "exp": now + ttl}
    if org_id:
        claims["org_id"] = org_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthorized("no token: pass authorization 'Bearer <token>' in the context data")
    if not isinstance(authorization, str):  # any JSON a caller put in the header
        raise Unauthorized("authorization must be 'Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("authorization must be 'Bearer <token>'")
    try:
        claims = jwt.decode(token.strip(), secret, algorithms=[ALGORITHM],
                            options={"require": ["sub", "role", "exp"]})
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"bad token: {exc}") from None
    if claims["role"] not in ROLES:
        raise Unauthorized(f"bad token: unknown role {claims['role']!r}")
    org_id = claims.get("org_id")
    if claims["role"] in SCOPED_ROLES and (not isinstance(org_id, str) or not org_id):
        # Without its organization a scoped role would see everything: refuse the token.
        raise Unauthorized(f"bad token: role {claims['role']} needs an org_id claim")
    if org_id is not None and not isinstance(org_id, str):
        raise Unauthorized("bad token: org_id must be a string")
    return Principal(sub=str(claims["sub"]), role=claims["role"], org_id=org_id)


class AuthContext:
    """What a worker knows of its caller; the token is decoded when first asked."""

    def __init__(self, secret: str, authorization: str | None):
        self._secret = secret
        self._authorization = authorization
        self._principal: Principal | None = None

    @property
    def principal(self) -> Principal:
        if self._principal is None:
            self._principal = decode_token(self._secret, self._authorization)
        return self._principal

    def require(self, *roles: str) -> Principal:
        principal = self.principal
        if roles and principal.role not in roles:
            raise Forbidden(f"role {principal.role} may not do this")
        return principal

    def check_scope(self, path, what: str = "this organization") -> None:
        self.principal.check_scope(path, what)


class Auth(DependencyProvider):
    def setup(self):
        self.secret = self.container.config.get("ORGLIFE_SECRET") or ""
        if not self.secret:
            raise RuntimeError("ORGLIFE_SECRET is empty: refusing to accept any token")

    def get_dependency(self, worker_ctx):
        return AuthContext(self.secret, worker_ctx.context_data.get("authorization"))


def authorized(*roles: str):
    """Entrypoint decorator (put it under @rpc): token and role checked before the body runs."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            self.auth.require(*roles)
            return method(self, *args, **kwargs)
        # nameko reads the entrypoint's signature with inspect.getcallargs, which does not
        # follow __wrapped__: without this, calls of the wrong arity pass its check (and fail
        # in the method instead) and sensitive_arguments match nothing.
        wrapper.__signature__ = inspect.signature(method)
        return wrapper

    return decorate
