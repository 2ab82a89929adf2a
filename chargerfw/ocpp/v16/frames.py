"""Frame hardening for OCPP-J 1.6: what to do with a backend frame before the library routes it.

The ``ocpp`` library only logs a frame it cannot unpack and maps schema failures to 2.0.1 codes.
OCPP-J 1.6 wants a CALLERROR for every malformed CALL, with its own codes (FormationViolation,
not 2.0.1's FormatViolation; OccurenceConstraintViolation for a missing field), and 1.6 section
4.2 wants no answer at all while the backend has Rejected us. :func:`check_frame` decides; only
a well-formed frame reaches the library, which then answers unknown actions (NotSupported,
NotImplemented) and runs the handlers.
"""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass

from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.exceptions import (
    FormationViolationError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)
from ocpp.messages import Call, CallError, CallResult, MessageType, get_validator

from chargerfw.logs import get_logger
from chargerfw.ocpp.connection import redact_frame

log = get_logger(__name__)

OCPP_VERSION = "1.6"
UNPARSABLE_ID = "-1"  # 1.6 names no id for a frame we cannot parse; 2.0.1 uses "-1"


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
    if call.action in handled_actions:
        try:
            get_validator(MessageType.Call, call.action, OCPP_VERSION).validate(call.payload)
        except SchemaValidationError as exc:
            return Answer(call_id, schema_error_to_ocpp(exc))
        except OSError:
            pass  # no schema shipped: the library answers NotImplemented
    return Route(call)
