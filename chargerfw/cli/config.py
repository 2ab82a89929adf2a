"""`chargerfw config show|get|set|validate`: the station file and the OCPP keys in the store.

A key is either an OCPP configuration key (``HeartbeatInterval``: lives in the store, checked by
:class:`~chargerfw.ocpp.config_keys.ConfigurationKeys` as a ChangeConfiguration would be) or a
path into the station file written as the config's own error messages write it:
``ocpp.url``, ``connector[1].meter.port`` (``[1]`` is the connector's id).

``set`` on the station file validates the whole edited file before it writes; the old file is
kept as ``<file>.bak`` and the new one replaces it atomically (comments and layout are kept).

Exit status: 0 ok; 1 value refused (invalid, read-only, write-only); 2 unknown key, bad options
or an invalid config; 3 store or service unreachable.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import tomlkit
from tomlkit.exceptions import TOMLKitError

from chargerfw.cli import config_option
from chargerfw.cli.common import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Station,
    echo_json,
    fail,
    json_option,
    load_station,
    reaching_the_hardware,
    station_access,
)
from chargerfw.config import ConfigError, load_config, parse_config
from chargerfw.config.ocpp_keys import key_definitions
from chargerfw.control.access import StationAccess, Via
from chargerfw.control.api import ConfigSetReply, ControlError
from chargerfw.control.client import ControlUnavailable
from chargerfw.ocpp.config_keys import ChangeStatus, ConfigurationKeys
from chargerfw.redact import REDACTED, is_secret_key, redact, redact_toml_text
from chargerfw.store import Store

_PART = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_-]*)(?:\[(?P<id>\d+)\])?$")


@click.group("config")
def config_group() -> None:
    """Show, read, change and validate the station config and OCPP keys."""


@contextlib.contextmanager
def ocpp_keys(station: Station) -> Iterator[tuple[ConfigurationKeys, Store] | None]:
    """The OCPP keys over the station's store (None: no store yet); the store closes after."""
    store = station.open_store()
    if store is None:
        yield None
        return
    from chargerfw.ocpp.security_profile import station_keys

    try:
        yield station_keys(station.config, store)[0], store
    finally:
        store.close()


def _ocpp_rows(station: Station) -> list[dict[str, Any]]:
    from chargerfw.ocpp.credentials import STORE_KEY, AuthorizationKeyFile

    definitions = key_definitions(len(station.config.connector))
    with ocpp_keys(station) as opened:
        stored = opened[1].config_all() if opened is not None else {}
    # The AuthorizationKey is kept in a file of its own, never in the store.
    if AuthorizationKeyFile(station.config.security.authorization_key_file).key:
        stored[STORE_KEY] = REDACTED
    rows = []
    for name, definition in sorted(definitions.items()):
        if not definition.readable:
            value = REDACTED if stored.get(name) else None
        elif definition.readonly or name not in stored:
            value = definition.default
        else:
            value = stored[name]
        rows.append({"key": name, "value": value, "readonly": definition.readonly,
                     "source": "store" if name in stored and not definition.readonly else "default"})
    return rows


@config_group.command("show")
@config_option
@json_option
def config_show(config_path: str, as_json: bool) -> None:
    """The station file (secrets redacted) and every OCPP key with its value."""
    station = load_station(config_path)
    text = Path(config_path).read_text(encoding="utf-8")
    rows = _ocpp_rows(station)
    if as_json:
        echo_json({"path": config_path, "station": redact(tomllib.loads(text)), "ocpp_keys": rows})
        return
    click.echo(f"# {config_path}")
    click.echo(redact_toml_text(text).rstrip())
    click.echo("")
    click.echo(f"# OCPP configuration keys (store {station.store_path})")
    width = max(len(r["key"]) for r in rows)
    for r in rows:
        flags = "read-only" if r["readonly"] else r["source"]
        value = "(write-only, not set)" if r["value"] is None else r["value"]
        click.echo(f"{r['key']:<{width}}  {value}  [{flags}]")


def _split_path(key: str) -> list[tuple[str, int | None]]:
    parts = []
    for part in key.split("."):
        match = _PART.match(part)
        if not match:
            raise click.UsageError(f"{key!r} is not a config path (for example ocpp.url or "
                                   "connector[1].meter.port)")
        parts.append((match["name"], int(match["id"]) if match["id"] else None))
    return parts


def _resolve(document: Any, key: str) -> tuple[Any, str]:
    """The container that holds the last part of ``key``, and that part's name."""
    parts = _split_path(key)
    node = document
    for index, (name, entry_id) in enumerate(parts):
        last = index == len(parts) - 1
        if last and entry_id is None:
            return node, name
        if name not in node:
            raise KeyError(key)
        node = node[name]
        if entry_id is not None:
            matches = [t for t in node if isinstance(t, dict) and t.get("id") == entry_id] \
                if isinstance(node, list) else []
            if not matches:
                raise KeyError(key)
            node = matches[0]
            if last:
                raise click.UsageError(f"{key} is a table: name a key inside it")
    raise KeyError(key)


@config_group.command("get")
@click.argument("key")
@config_option
@json_option
def config_get(key: str, config_path: str, as_json: bool) -> None:
    """One value: an OCPP key (HeartbeatInterval) or a station file path (ocpp.url)."""
    station = load_station(config_path)
    definitions = key_definitions(len(station.config.connector))
    if key in definitions:
        definition = definitions[key]
        if not definition.readable:
            fail(f"{key} is write-only: it cannot be read back", EXIT_FAILED)
        with ocpp_keys(station) as opened:
            value: Any = definition.default if opened is None else opened[0].raw(key)
        result = {"key": key, "value": value, "kind": "ocpp", "readonly": definition.readonly}
    else:
        document = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
        try:
            container, name = _resolve(document, key)
            value = container[name]
        except KeyError:
            fail(f"no key {key!r} in {config_path} and no OCPP key of that name", EXIT_USAGE)
        if is_secret_key(name) and value:
            value = REDACTED
        result = {"key": key, "value": value, "kind": "station"}
    if as_json:
        echo_json(result)
    else:
        shown = result["value"]
        click.echo(shown if isinstance(shown, str) else tomlkit.item(shown).as_string())


def _convert(old: Any, text: str, key: str) -> Any:
    """VALUE as the type the key already has; a new key takes a TOML literal or a string."""
    if isinstance(old, bool):
        if text.lower() not in ("true", "false"):
            raise click.BadParameter(f"{key} is a boolean: give true or false")
        return text.lower() == "true"
    if isinstance(old, int):
        try:
            return int(text, 0)
        except ValueError:
            raise click.BadParameter(f"{key} is an integer, got {text!r}") from None
    if isinstance(old, float):
        try:
            return float(text)
        except ValueError:
            raise click.BadParameter(f"{key} is a number, got {text!r}") from None
    if old is None:
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    return text


def _write_station_file(path: Path, text: str) -> Path:
    """Keep the old file as .bak, then replace the file atomically with the same mode."""
    backup = path.with_name(path.name + ".bak")
    shutil.copy2(path, backup)
    mode = path.stat().st_mode & 0o7777
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return backup


def _set_ocpp_key(station: Station, key: str, value: str) -> dict[str, Any]:
    """Through the running service (applied at once), else written to the store (read when
    the service next starts); validated as a ChangeConfiguration either way."""
    access: StationAccess = station_access(station)
    with reaching_the_hardware():
        try:
            answer: ConfigSetReply = access.set_ocpp_key(key, value)
        except ControlUnavailable as exc:
            access = station.direct(str(exc))
            answer = access.set_ocpp_key(key, value)
        except ControlError as exc:
            if not exc.method_missing:
                fail(f"the station refused {key}={value!r}: {exc.message}", EXIT_FAILED)
            access = station.direct()  # an older service without config.set
            answer = access.set_ocpp_key(key, value)
    if answer.status is ChangeStatus.NOT_SUPPORTED:
        fail(f"unknown OCPP key {key}", EXIT_USAGE)
    if answer.status not in (ChangeStatus.ACCEPTED, ChangeStatus.REBOOT_REQUIRED):
        fail(f"{key} refused: {answer.reason or answer.status.value}", EXIT_FAILED)
    via = "service" if access.via is Via.SERVICE else "store"
    return {"key": key, "kind": "ocpp", "status": answer.status.value, "via": via}


@config_group.command("set")
@click.argument("key")
@click.argument("value")
@config_option
@json_option
def config_set(key: str, value: str, config_path: str, as_json: bool) -> None:
    """Change an OCPP key (validated like ChangeConfiguration) or a station file value (the
    whole file is validated first; the old one is kept as .bak)."""
    station = load_station(config_path)
    definitions = key_definitions(len(station.config.connector))
    if key in definitions:
        result = _set_ocpp_key(station, key, value)
        if result["via"] == "store":
            note = "written to the store; the service reads it when it next starts"
        else:
            note = "applied by the running service"
    else:
        path = Path(config_path)
        try:
            document = tomlkit.parse(path.read_text(encoding="utf-8"))
        except TOMLKitError as exc:
            fail(f"{config_path} is not valid TOML: {exc}", EXIT_USAGE)
        try:
            container, name = _resolve(document, key)
        except KeyError:
            fail(f"no table for {key!r} in {config_path} (and no OCPP key of that name)",
                 EXIT_USAGE)
        old = container.get(name)
        if isinstance(old, dict | list):
            fail(f"{key} is a table or list: set the keys inside it", EXIT_USAGE)
        container[name] = _convert(old, value, key)
        new_text = tomlkit.dumps(document)
        try:
            parse_config(tomllib.loads(new_text), config_path)
        except ConfigError as exc:
            click.echo(f"refused: {key}={value!r} would make {config_path} invalid:", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            raise SystemExit(EXIT_FAILED) from None
        try:
            backup = _write_station_file(path, new_text)
        except OSError as exc:
            fail(f"cannot write {config_path}: {exc.strerror or exc}", EXIT_UNREACHABLE)
        result = {"key": key, "kind": "station", "backup": str(backup), "via": "file"}
        note = f"old file kept as {backup}; restart the service to apply (systemctl restart chargerfw)"
    if as_json:
        echo_json(result)
    else:
        shown = REDACTED if is_secret_key(key.rsplit(".", 1)[-1]) else value
        click.echo(f"{key} = {shown}: {note}")


@config_group.command("validate")
@config_option
@json_option
def config_validate(config_path: str, as_json: bool) -> None:
    """Check the station file and the OCPP keys in the store; exit 2 if the file is invalid,
    1 if a stored OCPP key is invalid."""
    from chargerfw.cli.selftest import ocpp_keys_check

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if as_json:
            echo_json({"valid": False, "path": config_path, "problems": exc.problems})
        else:
            click.echo(f"INVALID {config_path}:", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    check = ocpp_keys_check(Station(config, Path(config_path)))
    ok = check.status.value != "fail"
    if as_json:
        echo_json({"valid": ok, "path": config_path, "problems": [] if ok else [check.detail],
                   "ocpp_keys": check.detail})
    else:
        click.echo(f"{config_path}: valid (station {config.station.id}, "
                   f"{len(config.connector)} connector(s)); ocpp keys: {check.detail}")
    raise SystemExit(0 if ok else EXIT_FAILED)
