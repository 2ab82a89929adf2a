"""Bounds on what a partner may send the API: request body size, JSON nesting depth, and
the pagination parameters. A request past them is refused with a client error (HTTP 4xx,
OCPI 2001) before anything parses or stores it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# OCPI objects a CPO receives (tokens, commands, credentials, client info) are a few KiB and
# nest less than ten levels; these bounds leave ample room.
DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_MAX_JSON_DEPTH = 32
# Offsets past any real listing; bounded so the database never sees an out-of-range integer.
MAX_OFFSET = 2**31 - 1

# A JSON string (with its escapes) or a bracket: brackets inside strings do not nest.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class BodyRefused(Exception):
    """A request body past the limits, or not JSON; ``http_status`` is 400 or 413."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_json_depth < 1:
            raise ValueError("request limits must be positive")


def json_depth_exceeds(body: bytes, max_depth: int) -> bool:
    """True when arrays and objects in ``body`` nest deeper than ``max_depth``."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False  # cannot nest deeper than it has brackets
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def parse_json_body(body: bytes, limits: RequestLimits) -> Any:
    """``body`` parsed, when within ``limits``; BodyRefused otherwise."""
    if len(body) > limits.max_body_bytes:
        raise BodyRefused(413, f"request body exceeds {limits.max_body_bytes} bytes")
    if json_depth_exceeds(body, limits.max_json_depth):
        raise BodyRefused(400, f"JSON nests deeper than {limits.max_json_depth} levels")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise BodyRefused(400, "request body is not valid JSON") from None
