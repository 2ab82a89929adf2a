"""TOML input files validated with msgspec (:mod:`chargerfw.validation`): reading them, and
naming each problem by the key its author wrote.

Shared by the station config, the meter register maps and the fleet scenarios. Each keeps its
own error class (a :class:`TomlFileError`) and its own way of naming keys; the file reading and
the plain-words messages (from :mod:`chargerfw.validation`) are the same for all of them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chargerfw.validation import Invalid, Location


class TomlFileError(ValueError):
    """A document that cannot be used; ``problems`` names each bad key and what is wrong."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def read_toml(path: Path, error: Callable[[str, list[str]], Exception]) -> dict[str, Any]:
    """The parsed file; raises ``error(str(path), [problem])`` if it cannot be read or is not
    UTF-8 TOML."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(str(path), [f"cannot read file: {exc.strerror}"]) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(str(path), [f"not valid TOML: {exc}"]) from None


def dotted_key(loc: Location, data: dict[str, Any]) -> str:
    """The location joined with dots (``quantities.power_total.address``); empty at the top."""
    return ".".join(str(p) for p in loc)


def table_key(loc: Location, data: dict[str, Any]) -> str:
    """The location as TOML keys, an array-of-tables entry named by its ``id`` where it has one
    and else by position (``connector[1].meter.port``); ``(top level)`` at the top."""
    parts: list[str] = []
    node: object = data
    for item in loc:
        if isinstance(item, int) and parts:
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            label = entry.get("id", item) if isinstance(entry, dict) else item
            parts[-1] += f"[{label}]"
            node = entry
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def validation_problems(
    exc: Invalid,
    data: dict[str, Any],
    key: Callable[[Location, dict[str, Any]], str] = table_key,
) -> list[str]:
    """One ``key: message`` line per problem (only the message where ``key`` names nothing);
    ``data`` is the document that was validated, for keys that look into it."""
    problems = []
    for problem in exc.problems:
        name = key(problem.loc, data)
        problems.append(f"{name}: {problem.message}" if name else problem.message)
    return problems
