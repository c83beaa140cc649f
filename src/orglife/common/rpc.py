"""RPC entrypoint that answers every request, however malformed (SPEC §4, §7).

nameko 2.14's `RpcConsumer` lets kombu decode a request's body in the consumer thread: a body
kombu cannot decode (not JSON, not UTF-8, nested 100,000 deep, a 5,000-digit number, a
`{"__type__": ...}` object kombu has no decoder for, a content type it does not accept)
raises there, the caller gets no reply and waits for its timeout, or the container dies.

`rpc` here is nameko's `rpc` with its own consumer: the raw message comes through
`RawQueueConsumer` (orglife.common.messaging), the body is decoded here with kombu's own
serializer for the message's content type (so kombu's JSON types still work), and anything
that is not a well-formed call is answered with `ValidationError({"_request": [reason]})`
through nameko's `Responder`, then acked, so it is never redelivered. So are argument errors
(wrong arity, `args` that are not a list): nameko's `IncorrectSignature` is not one of the
documented errors. Well-formed calls go on exactly as nameko's.
"""
from __future__ import annotations

import json
import logging
import sys

import kombu.serialization
from kombu.exceptions import ContentDisallowed, DecodeError
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_SERIALIZER, LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import IncorrectSignature
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange

from .errors import ValidationError
from .messaging import RawQueueConsumer

log = logging.getLogger(__name__)

CALL_ID_STACK_HEADER = "call_id_stack"  # nameko's context key (header nameko.call_id_stack)


def request_error(reason: str) -> ValidationError:
    return ValidationError({"_request": [reason]})


def decode_failure(exc: BaseException) -> str:
    """Why a body could not be decoded, in words that do not repeat the body."""
    if isinstance(exc, DecodeError) and exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]  # kombu wraps the decoder's own error
    if isinstance(exc, ContentDisallowed):
        return f"body cannot be decoded: {exc}"
    if isinstance(exc, RecursionError):
        return "body cannot be decoded: nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "body cannot be decoded: not UTF-8"
    if isinstance(exc, json.JSONDecodeError):
        return f"body is not valid JSON: {exc.msg} (at character {exc.pos})"
    if isinstance(exc, ValueError) and "digits" in str(exc):
        return "body cannot be decoded: a number has too many digits"
    if isinstance(exc, ValueError) and exc.args and exc.args[0] == "Unsupported type":
        return "body cannot be decoded: an object with an unsupported __type__"
    if isinstance(exc, (ValueError, TypeError, AttributeError, LookupError)):
        return ("body cannot be decoded: an object with a bad __type__ or __value__ "
                f"({type(exc).__name__})")
    return f"body cannot be decoded ({type(exc).__name__})"


def request_problem(body, headers) -> str | None:
    """What makes a decoded body not a call nameko can make, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object with 'args' (a list) and 'kwargs' (an object)"
    if "args" not in body or "kwargs" not in body:
        return "body is missing 'args' or 'kwargs'"
    if not isinstance(body["args"], list):
        return "'args' must be a list"
    if not isinstance(body["kwargs"], dict) or not all(
            isinstance(key, str) for key in body["kwargs"]):
        return "'kwargs' must be an object"
    stack = (headers or {}).get(f"nameko.{CALL_ID_STACK_HEADER}")
    if stack is not None and not (isinstance(stack, list)
                                  and all(isinstance(item, str) for item in stack)):
        return "header nameko.call_id_stack must be a list of strings"
    return None


class _Request:
    """What nameko's Responder reads of a request: its properties, with a content type to
    answer in: the request's when the service accepts it, else JSON (never, say, pickle)."""

    def __init__(self, message, accept):
        self.properties = dict(message.properties)
        if self.properties.get("content_type") not in accept:
            self.properties["content_type"] = "application/json"


class OrglifeRpcConsumer(RpcConsumer):
    """nameko's RpcConsumer receiving raw messages: decodes each body itself and answers any
    request it cannot make into a call."""

    queue_consumer = RawQueueConsumer()

    def setup(self):
        """The RPC queue declared (or, with a service's own account, found and bound) here:
        the RPC exchange is shared, so the service's account may not declare it, and kombu
        must not try when it consumes."""
        super().setup()
        if not self.queue.no_declare:
            from kombu import Connection

            from .topology import declare_rpc_queue
            with Connection(self.container.config[AMQP_URI_CONFIG_KEY]) as conn:
                if not declare_rpc_queue(conn, self.container.service_name):
                    self.queue.no_declare = True

    def handle_message(self, message):  # called by RawQueueConsumer, in a managed thread
        try:
            try:
                body = kombu.serialization.loads(
                    message.body, message.content_type, message.content_encoding,
                    accept=self._accept())
            except Exception as exc:  # noqa: BLE001 - RecursionError included
                reason = decode_failure(exc)
                log.warning("refusing an RPC request to %s: %s",
                            message.delivery_info.get("routing_key"), reason)
                raise request_error(reason) from None
            super().handle_message(body, message)
        except Exception:  # noqa: BLE001 - a managed thread that raises kills the container
            self.handle_result(message, None, sys.exc_info())

    def _accept(self):
        return kombu.serialization.prepare_accept_content(self.container.accept)

    def handle_result(self, message, result, exc_info):
        """Reply like nameko's RpcConsumer, then ack; never raise (this runs in a managed
        thread, or as a worker's handle_result: either would kill the container)."""
        config = self.container.config
        if not message.properties.get("reply_to"):
            log.warning("an RPC request to %s without reply_to: nothing to answer; dropped",
                        message.delivery_info.get("routing_key"))
        else:
            try:
                responder = Responder(
                    config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
                    config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
                    _Request(message, self._accept()),
                    ssl=config.get(AMQP_SSL_CONFIG_KEY),
                    login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
                result, exc_info = responder.send_response(result, exc_info)
            except Exception as exc:  # noqa: BLE001 - the broker is gone: the caller times out
                log.error("could not reply to an RPC request to %s (%s: %s)",
                          message.delivery_info.get("routing_key"), type(exc).__name__, exc)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class OrglifeRpc(Rpc):
    """nameko's `rpc` entrypoint on OrglifeRpcConsumer; malformed calls and wrong arguments
    are ValidationErrors on `_request`."""

    rpc_consumer = OrglifeRpcConsumer()

    def handle_message(self, body, message):
        problem = request_problem(body, message.headers)
        if problem:
            raise request_error(problem)
        super().handle_message(body, message)

    def check_signature(self, args, kwargs):
        try:
            super().check_signature(args, kwargs)
        except IncorrectSignature as exc:
            raise request_error(f"wrong arguments: {exc}") from None


rpc = OrglifeRpc.decorator
