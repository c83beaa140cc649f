"""Authentication and scope (SPEC §4): JWTs in nameko context data, checked in one place.

Every RPC carries `authorization: "Bearer <token>"`. `@authorized(roles...)` on an entrypoint
checks the token and the role before the method body runs; the method then checks the scope of
the data it touches with `self.auth.check_scope(path)`, where `path` is the org ids from the
county down to the record's organization.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt
from nameko.extensions import DependencyProvider

from .errors import Forbidden, Unauthorized

ROLES = ("county_admin", "township_admin", "branch_secretary", "service")
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
    return Principal(sub=str(claims["sub"]), role=claims["role"], org_id=claims.get("org_id"))


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
        if not self.principal.covers(path):
            raise Forbidden(f"{what} is outside the scope of {self.principal.role} "
                            f"{self.principal.org_id or ''}".strip())


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
        return wrapper

    return decorate
