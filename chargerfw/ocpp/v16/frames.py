"""Frame hardening for OCPP-J 1.6: what to do with a backend frame before the library routes it.

The ``ocpp`` library only logs a frame it cannot unpack and maps schema failures to 2.0.1 codes.
OCPP-J 1.6 wants a CALLERROR for every malformed CALL, with its own codes (FormationViolation,
not 2.0.1's FormatViolation; OccurenceConstraintViolation for a missing field), and 1.6 section
4.2 wants no answer at all while the backend has Rejected us. :func:`check_frame` decides; only
a well-formed CALL for an action we handle reaches the library, which runs the handlers.

An action without a handler is answered here too: the library swaps the two codes of the
OCPP-J 1.6 error table (and their descriptions), so an action 1.6 does not define gets
NotImplemented ("not known") and one it defines that we do not handle NotSupported
("recognized but not supported").
"""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass

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
from ocpp.messages import Call, CallError, CallResult, MessageType, get_validator
from ocpp.v16.enums import Action

from chargerfw.logs import get_logger
from chargerfw.ocpp.connection import redact_frame

log = get_logger(__name__)

OCPP_VERSION = "1.6"
UNPARSABLE_ID = "-1"  # 1.6 names no id for a frame we cannot parse; 2.0.1 uses "-1"

# OCPP-J 1.6 section 4.2.3, table 7.
NOT_KNOWN = "Requested Action is not known by receiver"
NOT_SUPPORTED = "Requested Action is recognized but not supported by the receiver"
OCPP16_ACTIONS = frozenset(action.value for action in Action)


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
    details = {"cause": f"{where}: {error.message}"}
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


def check_frame(raw: str, handled_actions: Container[str], answering: bool) -> FrameVerdict:
    """What to do with one frame from the backend.

    ``handled_actions``: the actions we have a handler for (their payloads are checked against
    the 1.6 schema here); ``answering``: False while the backend has Rejected us."""
    try:
        message = json.loads(raw)
    except ValueError:
        return Answer(UNPARSABLE_ID, FormationViolationError(
            details={"cause": "frame is not valid JSON"}))
    if not isinstance(message, list) or not message or not isinstance(message[0], int):
        unique = (message[1] if isinstance(message, list) and len(message) > 1
                  and isinstance(message[1], str) else UNPARSABLE_ID)
        return Answer(unique, FormationViolationError(
            details={"cause": "frame is not an OCPP-J array [MessageTypeId, UniqueId, ...]"}))
    kind = message[0]
    if kind in (MessageType.CallResult, MessageType.CallError):
        try:
            if kind == MessageType.CallResult:
                CallResult(*message[1:])
            else:
                CallError(*message[1:])
        except TypeError:
            log.warning("ocpp.bad_response_frame", frame=redact_frame(raw)[:200])
            return Ignore()
        return Route()
    call_id = message[1] if len(message) > 1 and isinstance(message[1], str) else None
    if kind != MessageType.Call or call_id is None or len(message) != 4 \
            or not isinstance(message[2], str) or not isinstance(message[3], dict):
        return Answer(call_id or UNPARSABLE_ID, FormationViolationError(
            details={"cause": "a CALL is [2, \"<uniqueId>\", \"<Action>\", {<payload>}]"}))
    if not answering:
        log.info("ocpp.call_ignored_while_rejected", action=message[2])
        return Ignore()
    call = Call(call_id, message[2], message[3])
    if call.action not in handled_actions:
        return Answer(call_id, unhandled_action_error(call.action))
    try:
        get_validator(MessageType.Call, call.action, OCPP_VERSION).validate(call.payload)
    except SchemaValidationError as exc:
        return Answer(call_id, schema_error_to_ocpp(exc))
    return Route(call)
