"""Typed validation with msgspec that reports every problem with where it is.

:func:`convert` turns plain data (a parsed TOML document, a JSON object) into a typed value:
msgspec Structs (frozen, ``forbid_unknown_fields`` where unknown keys are typos), with ranges as
``Annotated[..., Meta(...)]`` and the rules no type can say in ``__post_init__``. Valid input
takes msgspec's own path (C, one pass). Invalid input is walked again to name every problem
(msgspec stops at the first), each with its location (``("connector", 0, "meter", "port")``)
and a message in plain words: ``unknown key``, ``required key is missing``, msgspec's
``Expected `int` >= 1``, or what a rule said.

Hand-written files (TOML) are converted with ``strict=False``: a number or a boolean written as
a string passes; the control API's JSON is strict.

A rule about one field raises :class:`FieldError` naming it, so the problem is reported at
the field (``ocpp.url: must start with ...``); any other ``ValueError`` from ``__post_init__``
is reported at the struct (``connector[1].meter: transport 'rtu' needs 'port'``).

A key that a newer schema replaced is still refused, but with what replaced it: a struct lists
such keys with their message in a ``replaced_keys`` class variable
(``ClassVar[Mapping[str, str]]``), which the report gives instead of ``unknown key``.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeVar, Union

import msgspec

T = TypeVar("T")
Location = tuple[int | str, ...]


class Problem(NamedTuple):
    """One thing wrong: where (keys and list positions from the top) and what."""

    loc: Location
    message: str


class Invalid(ValueError):
    """Data that does not fit its type; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(
            (".".join(str(part) for part in p.loc) + ": " if p.loc else "") + p.message
            for p in problems))


class FieldError(ValueError):
    """Raised by a struct's ``__post_init__`` for a rule about one of its fields."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def convert(data: object, type_: type[T], *, strict: bool = True) -> T:
    """``data`` as a ``type_``; :class:`Invalid` naming every problem if it does not fit.
    ``strict=False`` also takes a number or a boolean written as a string (``"9600"``,
    ``"true"``) and a whole float for an integer, as files written by hand may have them."""
    try:
        return msgspec.convert(data, type_, strict=strict, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        problems: list[Problem] = []
        _Walk(strict, problems).value(data, type_, ())
        raise Invalid(problems or [_problem((), type_, data, exc)]) from None


def _dec_hook(type_: Any, value: object) -> object:
    # The one type msgspec does not know that the firmware's inputs use.
    if type_ is Path:
        if isinstance(value, str):
            return Path(value)
        raise TypeError(f"Expected `str` (a path), got `{type(value).__name__}`")
    raise TypeError(f"Unsupported type {type_!r}")


def _is_struct(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, msgspec.Struct)


class _Walk:
    """Collects the problems of invalid data, part by part."""

    def __init__(self, strict: bool, out: list[Problem]) -> None:
        self.strict = strict
        self.out = out

    def value(self, value: object, type_: Any, loc: Location) -> None:
        """The problems of ``value`` as a ``type_`` at ``loc``."""
        out = self.out
        found = len(out)
        base = type_
        while typing.get_origin(base) is Annotated:
            base = typing.get_args(base)[0]
        origin = typing.get_origin(base)
        if _is_struct(base) and isinstance(value, dict):
            self.struct(value, base, loc)
            return
        if origin in (Union, types.UnionType):
            options = typing.get_args(base)
            if value is None and type(None) in options:
                return
            structs = [option for option in options if _is_struct(option)]
            if structs and isinstance(value, dict):
                chosen = _choose(value, structs, loc, out)
                if chosen is not None:
                    self.struct(value, chosen, loc)
                return
        elif origin in (list, tuple, set, frozenset) and isinstance(value, list):
            args = typing.get_args(base)
            if origin is not tuple or (len(args) == 2 and args[1] is Ellipsis):
                for index, item in enumerate(value):
                    self.value(item, args[0], (*loc, index))
        elif origin is dict and isinstance(value, dict):
            key_type, value_type = typing.get_args(base)
            for key, item in value.items():
                before = len(out)
                self.value(key, key_type, (*loc, key))
                if len(out) == before:
                    self.value(item, value_type, (*loc, key))
        if len(out) == found:  # the parts are fine: the whole (its length, its own rules)
            self.whole(value, type_, loc)

    def struct(self, value: dict[Any, Any], struct: Any, loc: Location) -> None:
        out = self.out
        found = len(out)
        config = struct.__struct_config__
        names = {config.tag_field}
        for field in msgspec.structs.fields(struct):
            names.add(field.encode_name)
            if field.encode_name in value:
                self.value(value[field.encode_name], field.type, (*loc, field.encode_name))
            elif field.required:
                out.append(Problem((*loc, field.encode_name), "required key is missing"))
        if config.forbid_unknown_fields:
            replaced = getattr(struct, "replaced_keys", {})
            out.extend(Problem((*loc, key), replaced.get(key, "unknown key"))
                       for key in value if key not in names)
        if len(out) == found:  # every field is fine: the struct's own rules (__post_init__)
            self.whole(value, struct, loc)

    def whole(self, value: object, type_: Any, loc: Location) -> None:
        try:
            msgspec.convert(value, type_, strict=self.strict, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            self.out.append(_problem(loc, type_, value, exc))


def _choose(value: dict[Any, Any], structs: list[Any], loc: Location,
            out: list[Problem]) -> Any:
    """The struct of a union that ``value`` is: the only one, or the one its tag names."""
    tag_field = structs[0].__struct_config__.tag_field
    if len(structs) == 1 or tag_field is None:
        return structs[0]
    by_tag = {struct.__struct_config__.tag: struct for struct in structs}
    known = ", ".join(str(tag) for tag in by_tag)
    if tag_field not in value:
        out.append(Problem((*loc, tag_field), f"required key is missing (one of: {known})"))
        return None
    tag = value[tag_field]
    if tag not in by_tag:
        out.append(Problem((*loc, tag_field), f"unknown {tag_field} {tag!r}; known: {known}"))
        return None
    return by_tag[tag]


_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _problem(loc: Location, type_: Any, value: object, exc: msgspec.ValidationError) -> Problem:
    """msgspec's error as a problem: a rule's own words where a rule raised it."""
    cause = exc.__cause__
    if isinstance(cause, FieldError):
        return Problem((*loc, cause.field), str(cause))
    if isinstance(cause, (ValueError, TypeError)):
        return Problem(loc, str(cause))
    message, _, path = str(exc).partition(" - at `")
    where = tuple(int(index) if index else name
                  for name, index in _PATH_PART.findall(path.rstrip("`")))
    choices = _choices(type_)
    if not where and choices is not None:
        message = f"Expected one of {', '.join(repr(c) for c in choices)}, got {value!r}"
    return Problem((*loc, *where), message)


def _choices(type_: Any) -> list[object] | None:
    """The values a Literal or Enum type (or an optional one) allows; None for other types."""
    while typing.get_origin(type_) is Annotated:
        type_ = typing.get_args(type_)[0]
    if typing.get_origin(type_) in (Union, types.UnionType):
        options = [t for t in typing.get_args(type_) if t is not type(None)]
        if len(options) != 1:
            return None
        type_ = options[0]
    if typing.get_origin(type_) is Literal:
        return list(typing.get_args(type_))
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return [member.value for member in type_]
    return None
