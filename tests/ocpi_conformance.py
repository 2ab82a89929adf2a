"""Conformance to OCPI 2.2.1, checked against an independent model of the specification: the
JSON Schemas in ``tests/ocpi_spec/`` (written from the spec text, one file per chapter), not the
backend's own pydantic models.

``violations``/``check`` validate one body as an object kind (``"Session"``, ``"Location[]"``
for a list); ``check_response`` validates an answer of our API (the envelope, and ``data`` as
the route's object when the status is 1000); ``check_push`` validates a body the backend sends
to a partner, classified by the partner's URL. ``OcpiTraffic`` applies the last two to every
HTTP exchange of a test (see ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SPEC_DIR = Path(__file__).parent / "ocpi_spec"
BASE_ID = "https://ocpi.example/2.2.1/"

FORMATS = FormatChecker()


DATETIME_SHAPE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z?$")


@FORMATS.checks("ocpi-date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    # The schema's pattern reports the wrong shape; this rejects impossible dates and times
    # (2026-02-30T25:00:00Z) of the right one.
    if isinstance(value, str) and DATETIME_SHAPE.match(value):
        datetime.fromisoformat(value.removesuffix("Z"))
    return True


@FORMATS.checks("ocpi-url")
def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class Nonconforming(AssertionError):
    """A body that is not what OCPI 2.2.1 defines; the message names every violation by its
    JSON path."""


@cache
def _registry() -> tuple[Registry, dict[str, str]]:
    """The spec's schemas, and each definition's name -> its schema URI (names are unique
    across the chapters)."""
    resources = []
    where: dict[str, str] = {}
    for path in sorted(SPEC_DIR.glob("*.json")):
        contents = json.loads(path.read_text())
        Draft202012Validator.check_schema(contents)
        resources.append((contents["$id"], Resource.from_contents(contents)))
        for name in contents["$defs"]:
            if name in where:
                raise ValueError(f"{name} is defined in {where[name]} and {path.name}")
            where[name] = f"{contents['$id']}#/$defs/{name}"
    return Registry().with_resources(resources), where


@cache
def _validator(kind: str) -> Draft202012Validator:
    registry, where = _registry()
    name, many = (kind[:-2], True) if kind.endswith("[]") else (kind, False)
    if name not in where:
        raise KeyError(f"no OCPI 2.2.1 definition named {name!r}")
    schema: dict[str, Any] = {"$ref": where[name]}
    if many:
        schema = {"type": "array", "items": schema}
    return Draft202012Validator(schema, registry=registry, format_checker=FORMATS)


def _path(parts: Iterator[Any] | Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def violations(kind: str, body: Any, *, partial: bool = False) -> list[str]:
    """Every way ``body`` differs from the OCPI 2.2.1 ``kind``, as ``"$.json.path: message"``.

    ``partial`` is a PATCH body: only the fields it carries are checked, and it must carry
    ``last_updated`` (8.2.2.3, 9.2.2.3, 12.2.1.3: "Any request to the PATCH method SHALL
    contain the last_updated field")."""
    found = []
    for error in _validator(kind).iter_errors(body):
        if partial and error.validator == "required" and not error.absolute_path:
            continue
        found.append(f"{_path(error.absolute_path)}: {error.message}")
    if partial and isinstance(body, dict) and "last_updated" not in body:
        found.append("$: 'last_updated' is a required property of a PATCH")
    found.extend(one_digit_fractions(body))
    return sorted(found)


def one_digit_fractions(body: Any, path: str = "$") -> list[str]:
    """A ChargingProfile's ``limit`` and ``min_charging_rate`` "accept at most one digit
    fraction (e.g. 8.1)" (14.5.3, 14.5.4)."""
    found = []
    if isinstance(body, dict):
        if "charging_rate_unit" in body or "start_period" in body:
            for key in ("limit", "min_charging_rate"):
                value = body.get(key)
                if isinstance(value, float) and round(value, 1) != value:
                    found.append(f"{path}.{key}: {value!r} has more than one digit fraction")
        for key, value in body.items():
            found.extend(one_digit_fractions(value, f"{path}.{key}"))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            found.extend(one_digit_fractions(value, f"{path}[{index}]"))
    return found


def check(kind: str, body: Any, *, partial: bool = False, where: str = "") -> None:
    """Raise ``Nonconforming`` naming every violation of ``kind`` in ``body``."""
    found = violations(kind, body, partial=partial)
    if found:
        raise Nonconforming(f"{where or kind} is not an OCPI 2.2.1 {kind}"
                            f"{' PATCH' if partial else ''}:\n  " + "\n  ".join(found))


# --- our API: what each route answers -----------------------------------------------------------

_ID = r"[^/]+"
# (methods, path, the kind of ``data`` in a 1000 answer; None: no data)
API_ROUTES: list[tuple[str, str, str | None]] = [
    ("GET", r"/ocpi/versions", "Version[]"),
    ("GET", r"/ocpi/2\.2\.1", "VersionDetails"),
    ("GET POST PUT", r"/ocpi/2\.2\.1/credentials", "Credentials"),
    ("DELETE", r"/ocpi/2\.2\.1/credentials", None),
    ("GET", r"/ocpi/2\.2\.1/locations", "Location[]"),
    ("GET", rf"/ocpi/2\.2\.1/locations/{_ID}", "Location"),
    ("GET", rf"/ocpi/2\.2\.1/locations/{_ID}/{_ID}", "EVSE"),
    ("GET", rf"/ocpi/2\.2\.1/locations/{_ID}/{_ID}/{_ID}", "Connector"),
    ("GET", r"/ocpi/2\.2\.1/sessions", "Session[]"),
    ("PUT", rf"/ocpi/2\.2\.1/sessions/{_ID}/charging_preferences",
     "ChargingPreferencesResponse"),
    ("GET", r"/ocpi/2\.2\.1/cdrs", "CDR[]"),
    ("GET", r"/ocpi/2\.2\.1/tariffs", "Tariff[]"),
    ("GET", rf"/ocpi/2\.2\.1/tokens/{_ID}/{_ID}/{_ID}", "Token"),
    ("PUT PATCH", rf"/ocpi/2\.2\.1/tokens/{_ID}/{_ID}/{_ID}", None),
    ("POST", rf"/ocpi/2\.2\.1/commands/{_ID}", "CommandResponse"),
    ("GET", rf"/ocpi/2\.2\.1/hubclientinfo/{_ID}/{_ID}", "ClientInfo"),
    ("GET PUT DELETE", rf"/ocpi/2\.2\.1/chargingprofiles/{_ID}", "ChargingProfileResponse"),
    ("PUT", rf"/ocpi/2\.2\.1/hubclientinfo/{_ID}/{_ID}", None),
    ("GET", r"/opendata/locations", "Location[]"),
]
OUR_PATHS = re.compile(r"^/ocpi/(versions|2\.2\.1)(/.*)?$|^/opendata(/.*)?$")


def response_kind(method: str, path: str) -> tuple[bool, str | None]:
    """(whether the route is one of ours, the kind of its ``data``)."""
    path = path.rstrip("/") or "/"
    for methods, pattern, kind in API_ROUTES:
        if method in methods.split() and re.fullmatch(pattern, path):
            return True, kind
    return False, None


def check_response(method: str, path: str, status: int, body: bytes) -> str:
    """An answer of our API: always an OCPI envelope; in a 1000 answer ``data`` is the
    route's object (or list), or absent where the route returns none. Returns what was
    checked (``Response`` alone, or ``Response/<kind>``)."""
    where = f"{method} {path} (HTTP {status})"
    try:
        parsed = json.loads(body)
    except ValueError:
        raise Nonconforming(f"{where}: the answer is not JSON: {body[:200]!r}") from None
    check("Response", parsed, where=where)
    known, kind = response_kind(method, path)
    if parsed["status_code"] != 1000 or not known:
        return "Response"
    data = parsed.get("data")
    if kind is None:
        if data is not None:
            raise Nonconforming(f"{where}: this answer carries no data, got {data!r}")
        return "Response"
    check(kind, data, where=f"{where} data")
    return f"Response/{kind}"


# --- pushes: what a body sent to a partner's module URL is ---------------------------------------

# chargingprofiles: what the backend POSTs to the response_url of a GET, PUT or DELETE (14.2.1)
RESULT_OF = {"GET": "ActiveChargingProfileResult", "PUT": "ChargingProfileResult",
             "DELETE": "ClearProfileResult"}

MODULES = ("locations", "sessions", "cdrs", "tariffs", "tokens", "commands", "credentials",
           "hubclientinfo", "versions")


def push_kind(method: str, url: str, response_urls: Mapping[str, str] = MappingProxyType({})
              ) -> tuple[str | None, bool]:
    """(the kind of a body sent to ``url``, whether it is a PATCH); kind None when the call
    carries no body by the spec (GET, DELETE); raises for a URL of no module.
    ``response_urls``: the response_url of each asynchronous request a test made -> the
    result the backend POSTs there."""
    if method in ("GET", "DELETE"):
        return None, False
    if method == "POST" and url in response_urls:
        return response_urls[url], False
    segments = [s for s in urlsplit(url).path.split("/") if s]
    index = next((i for i, s in enumerate(segments) if s in MODULES), None)
    if index is None:
        raise Nonconforming(f"{method} {url}: a body sent to a URL of no OCPI module")
    module, rest = segments[index], segments[index + 1:]
    patch = method == "PATCH"
    kinds: dict[tuple[str, str, int], str] = {
        ("locations", "PUT", 3): "Location", ("locations", "PUT", 4): "EVSE",
        ("locations", "PUT", 5): "Connector", ("sessions", "PUT", 3): "Session",
        ("cdrs", "POST", 0): "CDR", ("tariffs", "PUT", 3): "Tariff",
        ("tokens", "POST", 2): "LocationReferences", ("credentials", "POST", 0): "Credentials",
        ("credentials", "PUT", 0): "Credentials", ("commands", "POST", -1): "CommandResult",
    }
    key_method = "PUT" if patch else method
    kind = kinds.get((module, key_method, len(rest))) or kinds.get((module, key_method, -1))
    if kind is None or (patch and module not in ("locations", "sessions")):
        raise Nonconforming(f"{method} {url}: OCPI 2.2.1 defines no such call to a "
                            f"{module} Receiver")
    return kind, patch


def check_push(method: str, url: str, body: bytes,
               response_urls: Mapping[str, str] = MappingProxyType({})) -> str | None:
    """A body the backend sends to ``url``; returns the kind checked (``Session PATCH``)."""
    kind, patch = push_kind(method, url, response_urls)
    where = f"{method} {url}"
    if kind is None:
        if body:
            raise Nonconforming(f"{where}: this call carries no body, got {body[:200]!r}")
        return None
    if not body:
        if kind == "LocationReferences":  # real-time authorization may send no location
            return None
        raise Nonconforming(f"{where}: a {kind} body is missing")
    check(kind, json.loads(body), partial=patch, where=where)
    return f"{kind} PATCH" if patch else kind


# --- every exchange of a test ----------------------------------------------------------------------

_in_backend: contextvars.ContextVar[bool] = contextvars.ContextVar("in_backend", default=False)


@dataclass
class OcpiTraffic:
    """Checks every answer of our API that a client in the test process receives, and every
    body the backend (its ``GuardedTransport``) sends to a partner. Violations are kept in
    ``found``; an answer that does not conform also raises where the client receives it."""

    found: list[str] = field(default_factory=list)
    # What passed, counted by kind: "Response/Session[]", "Session PATCH", "CDR", ...
    checked: Counter[str] = field(default_factory=Counter)
    response_urls: dict[str, str] = field(default_factory=dict)

    @contextlib.contextmanager
    def installed(self) -> Iterator[OcpiTraffic]:
        from chargerfw.csms.urlpolicy import GuardedTransport

        plain = httpx.AsyncHTTPTransport.handle_async_request
        guarded = GuardedTransport.handle_async_request
        traffic = self

        async def on_plain(transport: httpx.AsyncHTTPTransport, request: httpx.Request
                           ) -> httpx.Response:
            if _in_backend.get():
                return await plain(transport, request)
            traffic.note_request(request, await request.aread())
            response = await plain(transport, request)
            if OUR_PATHS.match(request.url.path):
                body = await response.aread()
                traffic.note(lambda: check_response(request.method, request.url.path,
                                                    response.status_code, body), raise_=True)
            return response

        async def on_guarded(transport: GuardedTransport, request: httpx.Request
                             ) -> httpx.Response:
            body = await request.aread()
            url = str(request.url)
            traffic.note(lambda: check_push(request.method, url, body, traffic.response_urls))
            token = _in_backend.set(True)
            try:
                return await guarded(transport, request)
            finally:
                _in_backend.reset(token)

        httpx.AsyncHTTPTransport.handle_async_request = on_plain  # type: ignore[method-assign]
        GuardedTransport.handle_async_request = on_guarded  # type: ignore[method-assign]
        try:
            yield self
        finally:
            httpx.AsyncHTTPTransport.handle_async_request = plain  # type: ignore[method-assign]
            GuardedTransport.handle_async_request = guarded  # type: ignore[method-assign]

    def note_request(self, request: httpx.Request, body: bytes) -> None:
        """Remember the response_url of an asynchronous request sent to our API (a command, a
        charging profile set, read or cleared): the backend POSTs its result there."""
        path, method = request.url.path, request.method
        url: object = None
        if not OUR_PATHS.match(path):  # e.g. the admin API's commands
            return
        if "/chargingprofiles/" in path and method in ("GET", "DELETE"):
            url = request.url.params.get("response_url")
        elif body and ((method == "POST" and "/commands/" in path)
                       or (method == "PUT" and "/chargingprofiles/" in path)):
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                url = json.loads(body).get("response_url")
        if isinstance(url, str):
            self.response_urls[url] = (RESULT_OF[method] if "/chargingprofiles/" in path
                                       else "CommandResult")

    def note(self, checking: Callable[[], str | None], raise_: bool = False) -> None:
        try:
            kind = checking()
        except Nonconforming as exc:
            self.found.append(str(exc))
            if raise_:
                raise
        else:
            if kind is not None:
                self.checked[kind] += 1
