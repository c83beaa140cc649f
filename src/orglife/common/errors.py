"""Errors that cross RPC with their type (SPEC §4).

nameko serialises an exception as its class path and args; classes registered with
`deserialize_to_instance` come back to a caller that imports this module as the same type,
instead of a bare `RemoteError`.
"""
from __future__ import annotations

import json

from nameko.exceptions import deserialize_to_instance


class OrglifeError(Exception):
    """Base of the errors callers are meant to see and handle."""


@deserialize_to_instance
class ValidationError(OrglifeError):
    """Bad input. `errors` maps each bad field to a list of messages; str() is that map as JSON."""

    def __init__(self, errors):
        if isinstance(errors, str):  # as deserialised from the wire: the JSON text
            try:
                errors = json.loads(errors)
            except ValueError:
                errors = {"_schema": [errors]}
        self.errors = errors
        super().__init__(json.dumps(errors, ensure_ascii=False, sort_keys=True))

    def __str__(self):
        return json.dumps(self.errors, ensure_ascii=False, sort_keys=True)

    @classmethod
    def field(cls, name: str, message: str) -> "ValidationError":
        return cls({name: [message]})


@deserialize_to_instance
class NotFound(OrglifeError):
    pass


@deserialize_to_instance
class Conflict(OrglifeError):
    pass


@deserialize_to_instance
class Forbidden(OrglifeError):
    pass


@deserialize_to_instance
class Unauthorized(OrglifeError):
    pass


EXPECTED_ERRORS = (ValidationError, NotFound, Conflict, Forbidden, Unauthorized)
