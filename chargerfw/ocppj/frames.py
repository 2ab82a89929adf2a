"""OCPP-J 1.6 frames as both ends of a link meet them — the station and the backend alike: a
frame decoded with bounds (:func:`decode_frame`), redacted for a log (:func:`redact_frame`), and
judged before the ``ocpp`` library routes it (:func:`check_frame`).
Frame hardening for OCPP-J 1.6: what to do with a backend frame before the library routes it.

The ``ocpp`` library only logs a frame it cannot unpack and maps schema failures to 2.0.1 codes.
OCPP-J 1.6 wants a CALLERROR for every malformed CALL, with its own codes (FormationViolation,
not 2.0.1's FormatViolation; OccurenceConstraintViolation for a missing field), and 1.6 section
4.2 wants no answer at all while the backend has Rejected us. :func:`check_frame` decides; only
a well-formed CALL for an action we handle reaches the library, which runs the handlers.

An action without a handler is answered here too: the library swaps the two codes of the
OCPP-J 1.6 error table (and their descriptions), so an action 1.6 does not define gets
NotImplemented ("not known") and one it defines that we do not handle NotSupported
("recognized but not supported").

Hostile input gets a defined answer, never an internal error or a dropped link: a frame that
is not JSON, nests deeper than any OCPP message, or holds a lone surrogate is a
FormationViolation (unique id "-1" when it cannot be read); a CALL's uniqueId must be 1-36
characters; an integer outside OCPP's 32 bits is a TypeConstraintViolation. A CALLRESULT or
CALLERROR is never answered, however malformed, and one that answers none of our outstanding
CALLs is dropped.
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.exceptions import (
    FormationViolationError,
    NotSupportedError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)
from ocpp.exceptions import NotImplementedError as NotImplementedCallError
from ocpp.messages import Call, CallError, MessageType, get_validator
from ocpp.v16.enums import Action

from chargerfw.logs import get_logger

log = get_logger(__name__)

REDACTED = "***"
_SECRET_KEYS = {"authorizationkey", "password"}

# OCPP-J payloads nest a few levels (SetChargingProfile, the deepest 1.6 message, has six); a
# frame nested deeper is refused before anything recurses over it.
MAX_FRAME_DEPTH = 20
LOGGED_UNREADABLE_CHARS = 2000  # what the log keeps of a frame that cannot be decoded


class FrameDecodeError(ValueError):
    """A frame that is not an OCPP-J JSON text. ``message`` is what was parsed, if the text
    was JSON but holds what no OCPP frame may (deep nesting, a lone surrogate, NaN)."""

    def __init__(self, reason: str, message: Any = None) -> None:
        super().__init__(reason)
        self.message = message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_frame(raw: str) -> Any:
    """The JSON of one frame, or :class:`FrameDecodeError`: not JSON (NaN and Infinity
    included), nested deeper than :data:`MAX_FRAME_DEPTH`, or a string that is not Unicode
    text (a lone surrogate such as ``"\\ud800"``, which no UTF-8 store or log can take).

    Nothing here recurses in Python: a frame of 100,000 nested arrays ends in the decoder's
    own depth guard, caught here."""
    try:
        message = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise FrameDecodeError(f"nested deeper than {MAX_FRAME_DEPTH} levels") from None
    except ValueError as exc:
        raise FrameDecodeError(f"not JSON ({exc})") from None
    pending: list[tuple[Any, int]] = [(message, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth > MAX_FRAME_DEPTH:
                raise FrameDecodeError(f"nested deeper than {MAX_FRAME_DEPTH} levels", message)
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                if isinstance(key, str) and not _is_text(key):
                    raise FrameDecodeError("a key is not Unicode text (lone surrogate)", message)
                pending.append((value, depth + 1))
        elif isinstance(node, str) and not _is_text(node):
            raise FrameDecodeError("a string is not Unicode text (lone surrogate)", message)
        elif isinstance(node, float) and not math.isfinite(node):
            raise FrameDecodeError("a number is out of range", message)
    return message


def _is_text(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def redact_frame(frame: str) -> str:
    """A frame for the log with secrets replaced: AuthorizationKey values in
    ChangeConfiguration / GetConfiguration, and any field named like a password. A frame that
    cannot be decoded is logged as it came, cut to :data:`LOGGED_UNREADABLE_CHARS`."""
    try:
        message = decode_frame(frame)
    except FrameDecodeError:
        if len(frame) <= LOGGED_UNREADABLE_CHARS:
            return frame
        return f"{frame[:LOGGED_UNREADABLE_CHARS]}...({len(frame)} characters)"
    if not isinstance(message, list):
        return frame

    def scrub(node: Any) -> Any:  # depth is bounded by decode_frame
        if isinstance(node, dict):
            secret_pair = str(node.get("key", "")).lower() in _SECRET_KEYS and "value" in node
            return {k: (REDACTED if (k.lower() in _SECRET_KEYS or (secret_pair and k == "value"))
                        else scrub(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    return json.dumps(scrub(message), separators=(",", ":"))


OCPP_VERSION = "1.6"
UNPARSABLE_ID = "-1"  # 1.6 names no id for a frame we cannot parse; 2.0.1 uses "-1"

# OCPP-J 1.6 section 4.2.3, table 7.
NOT_KNOWN = "Requested Action is not known by receiver"
NOT_SUPPORTED = "Requested Action is recognized but not supported by the receiver"
OCPP16_ACTIONS = frozenset(action.value for action in Action)
MAX_UNIQUE_ID_LENGTH = 36  # OCPP-J 1.6 section 4.1.4
# OCPP 1.6 ``integer`` fields are 32-bit (``xs:int`` in the 1.6 SOAP schema; the JSON schemas
# only say "integer").
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_CAUSE_LENGTH = 300


@dataclass(frozen=True, slots=True)
class Route:
    """Well-formed: hand the frame to the library's router."""

    call: Call | None = None  # the CALL it carries (None for a CALLRESULT or CALLERROR)


@dataclass(frozen=True, slots=True)
class Answer:
    """Malformed: answer with this CALLERROR; nothing else happens."""

    unique_id: str
    error: OCPPError

    def frame(self) -> str:
        error = self.error
        return CallError(self.unique_id, error.code, error.description, error.details).to_json()


@dataclass(frozen=True, slots=True)
class Ignore:
    """Drop the frame without an answer (the reason is logged)."""


FrameVerdict = Route | Answer | Ignore


def schema_error_to_ocpp(error: SchemaValidationError) -> OCPPError:
    """OCPP-J 1.6 section 4.2.3 error codes for a payload that fails its JSON schema."""
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    # The schema's complaint quotes the value: keep the answer small for a huge one.
    details = {"cause": f"{where}: {error.message}"[:MAX_CAUSE_LENGTH]}
    if error.validator in ("type", "maxLength"):
        return TypeConstraintViolationError(details=details)
    if error.validator in ("required", "minItems", "maxItems"):
        return OccurenceConstraintViolationError(details=details)
    if error.validator == "additionalProperties":
        return FormationViolationError(details=details)
    return PropertyConstraintViolationError(details=details)


def unhandled_action_error(action: str) -> OCPPError:
    """The CALLERROR for a CALL whose action we have no handler for."""
    if action in OCPP16_ACTIONS:
        return NotSupportedError(description=NOT_SUPPORTED,
                                 details={"cause": f"{action} is not supported here"})
    return NotImplementedCallError(description=NOT_KNOWN,
                                   details={"cause": f"{action} is not an OCPP 1.6 action"})


def _is_answer(message: Any) -> bool:
    """A CALLRESULT or CALLERROR by its MessageTypeId (never answered, however malformed)."""
    return (isinstance(message, list) and bool(message) and not isinstance(message[0], bool)
            and message[0] in (MessageType.CallResult, MessageType.CallError))


def _valid_unique_id(unique_id: Any) -> bool:
    return isinstance(unique_id, str) and 0 < len(unique_id) <= MAX_UNIQUE_ID_LENGTH


def _answer_shape_ok(message: list[Any]) -> bool:
    if not isinstance(message[0], int) or not _valid_unique_id(
            message[1] if len(message) > 1 else None):
        return False
    if message[0] == MessageType.CallResult:
        return len(message) == 3 and isinstance(message[2], dict)
    return (len(message) == 5 and isinstance(message[2], str) and isinstance(message[3], str)
            and isinstance(message[4], dict))


def integer_out_of_range(payload: Any) -> str | None:
    """Where ``payload`` holds an integer outside OCPP's 32-bit ``integer``, or None."""
    pending: list[tuple[Any, str]] = [(payload, "")]
    while pending:
        node, where = pending.pop()
        if isinstance(node, dict | list):
            items = node.items() if isinstance(node, dict) else enumerate(node)
            pending.extend((value, f"{where}/{key}" if where else str(key))
                           for key, value in items)
        elif isinstance(node, int) and not isinstance(node, bool) \
                and not INT32_MIN <= node <= INT32_MAX:
            return where or "payload"
    return None


# The CALLs the library validates with decimals (their schemas' multipleOf 0.1 fails on binary
# floats otherwise). Its validator cache is keyed by action only, so a validator built here
# must parse floats as the library does, or one of the two checks a payload of floats against
# a schema of decimals (a TypeError that ends the session).
DECIMAL_CALLS = frozenset({"SetChargingProfile", "RemoteStartTransaction"})


def _validate_call(call: Call) -> None:
    if call.action in DECIMAL_CALLS:
        validator = get_validator(MessageType.Call, call.action, OCPP_VERSION,
                                  parse_float=decimal.Decimal)
        validator.validate(json.loads(json.dumps(call.payload), parse_float=decimal.Decimal))
    else:
        get_validator(MessageType.Call, call.action, OCPP_VERSION).validate(call.payload)


def check_frame(raw: str, handled_actions: Container[str], answering: bool,
                awaited_answers: Container[str]) -> FrameVerdict:
    """What to do with one frame from the backend.

    ``handled_actions``: the actions we have a handler for (their payloads are checked against
    the 1.6 schema here); ``answering``: False while the backend has Rejected us;
    ``awaited_answers``: the unique ids of our CALLs waiting for an answer (any other answer is
    dropped here, so stale answers never pile up in the library's queue)."""
    try:
        message = decode_frame(raw)
    except FrameDecodeError as exc:
        if _is_answer(exc.message):
            log.warning("ocpp.bad_response_frame", error=str(exc))
            return Ignore()
        parsed = exc.message
        unique = (parsed[1] if isinstance(parsed, list) and len(parsed) > 1
                  and _valid_unique_id(parsed[1]) else UNPARSABLE_ID)
        return Answer(unique, FormationViolationError(
            details={"cause": f"frame is {exc}" if parsed is None else str(exc)}))
    if _is_answer(message):
        if not _answer_shape_ok(message):
            log.warning("ocpp.bad_response_frame", frame=redact_frame(raw)[:200])
            return Ignore()
        if message[1] not in awaited_answers:
            log.info("ocpp.unmatched_answer_dropped", unique_id=message[1][:40])
            return Ignore()
        return Route()
    if not isinstance(message, list) or not message or not isinstance(message[0], int):
        unique = (message[1] if isinstance(message, list) and len(message) > 1
                  and _valid_unique_id(message[1]) else UNPARSABLE_ID)
        return Answer(unique, FormationViolationError(
            details={"cause": "frame is not an OCPP-J array [MessageTypeId, UniqueId, ...]"}))
    kind = message[0]
    call_id = message[1] if len(message) > 1 and isinstance(message[1], str) else None
    if kind != MessageType.Call or call_id is None or len(message) != 4 \
            or not isinstance(message[2], str) or not isinstance(message[3], dict):
        return Answer(call_id or UNPARSABLE_ID, FormationViolationError(
            details={"cause": "a CALL is [2, \"<uniqueId>\", \"<Action>\", {<payload>}]"}))
    if not _valid_unique_id(call_id):
        # Answered with the id as sent, so the backend can match the refusal to its CALL.
        return Answer(call_id, FormationViolationError(
            details={"cause": f"uniqueId must be 1 to {MAX_UNIQUE_ID_LENGTH} characters"}))
    if not answering:
        log.info("ocpp.call_ignored_while_rejected", action=message[2])
        return Ignore()
    call = Call(call_id, message[2], message[3])
    if call.action not in handled_actions:
        return Answer(call_id, unhandled_action_error(call.action))
    try:
        _validate_call(call)
    except SchemaValidationError as exc:
        return Answer(call_id, schema_error_to_ocpp(exc))
    where = integer_out_of_range(call.payload)
    if where is not None:
        return Answer(call_id, TypeConstraintViolationError(
            details={"cause": f"{where}: integer outside -2^31..2^31-1"}))
    return Route(call)
