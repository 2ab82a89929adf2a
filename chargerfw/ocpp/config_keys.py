"""OCPP 1.6 configuration keys over the station's store: GetConfiguration, ChangeConfiguration
and the listeners that act on a change. What each key is and which values it takes is the
catalogue in :mod:`chargerfw.config.ocpp_keys`.

Values live in the store as the strings OCPP puts on the wire; a key never written there has
its default.

RebootRequired is never answered: every writable key takes effect without a reboot (interval
keys at their next tick, WebSocketPingInterval on the live socket, AuthorizationKey and
SecurityProfile by a reconnect right after the reply).

A key with an applier (:meth:`ConfigurationKeys.set_applier`) is not written to the store by
a change: the applier decides and keeps it where it belongs (AuthorizationKey in its own file,
SecurityProfile once the new profile connected). Such a key without its applier is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from chargerfw.config.ocpp_keys import ConfigValueError, key_definitions, normalise
from chargerfw.logs import get_logger
from chargerfw.station.enums import ChangeStatus

log = get_logger(__name__)

# Keys only an applier may change (see the module's docstring).
APPLIED_KEYS = frozenset({"AuthorizationKey", "SecurityProfile"})
Applier = Callable[[str], tuple[ChangeStatus, str]]


class ConfigStore(Protocol):
    def config_get(self, key: str) -> str | None: ...
    def config_all(self) -> dict[str, str]: ...
    def config_set(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    key: str
    readonly: bool
    value: str | None  # None for write-only keys


class ConfigurationKeys:
    """The charge point's configuration keys over a store.

    ``on_change(key, value)`` listeners run after a change is persisted (the OCPP client uses
    them to reschedule heartbeats, ping intervals, meter sampling)."""

    def __init__(self, store: ConfigStore, number_of_connectors: int = 1,
                 overrides: dict[str, str] | None = None, security_profile: int = 0,
                 defaults: dict[str, str] | None = None,
                 additional_root_certificate_check: bool = False) -> None:
        self._store = store
        # ``defaults``: what a key not written yet reads as (the station config's, which may
        # change), unlike ``overrides``, written once.
        self.definitions = key_definitions(number_of_connectors, security_profile, defaults,
                                           additional_root_certificate_check)
        self._listeners: list[Callable[[str, str], None]] = []
        self._appliers: dict[str, Applier] = {}
        # Station-config provisioning (e.g. AuthorizationKey from the TOML password) is applied
        # only where the store has no value yet: the backend's later changes win.
        stored = store.config_all()
        for key, value in (overrides or {}).items():
            definition = self.definitions[key]
            canonical = normalise(definition, value)
            if key not in stored:
                store.config_set(key, canonical)

    def add_listener(self, listener: Callable[[str, str], None]) -> None:
        self._listeners.append(listener)

    def set_applier(self, key: str, applier: Applier) -> None:
        """``applier(canonical value) -> (status, reason)`` takes the changes of ``key`` in
        place of the store (one of :data:`APPLIED_KEYS`)."""
        if key not in APPLIED_KEYS:
            raise ValueError(f"{key} is written to the store, it has no applier")
        self._appliers[key] = applier

    def raw(self, key: str) -> str:
        definition = self.definitions[key]
        if definition.readonly:
            return definition.default  # read-only keys describe this firmware, not the store
        stored = self._store.config_get(key)
        return definition.default if stored is None else stored

    def get_bool(self, key: str) -> bool:
        return self.raw(key) == "true"

    def get_int(self, key: str) -> int:
        return int(self.raw(key))

    def get_list(self, key: str) -> list[str]:
        text = self.raw(key)
        return [item for item in text.split(",") if item] if text else []

    def get_configuration(self, keys: Iterable[str] | None) -> tuple[list[ConfigEntry], list[str]]:
        """GetConfiguration: (known entries, unknown keys). ``keys`` None or empty = all."""
        wanted = list(keys) if keys else list(self.definitions)
        known: list[ConfigEntry] = []
        unknown: list[str] = []
        for key in wanted:
            definition = self.definitions.get(key)
            if definition is None:
                unknown.append(key)
                continue
            value = self.raw(key) if definition.readable else None
            known.append(ConfigEntry(key, definition.readonly, value))
        return known, unknown

    def change(self, key: str, value: str) -> tuple[ChangeStatus, str]:
        """ChangeConfiguration: (status, reason). Nothing is stored unless Accepted."""
        definition = self.definitions.get(key)
        if definition is None:
            return ChangeStatus.NOT_SUPPORTED, f"unknown key {key!r}"
        if definition.readonly:
            return ChangeStatus.REJECTED, f"{key} is read-only"
        try:
            canonical = normalise(definition, value)
        except ConfigValueError as exc:
            return ChangeStatus.REJECTED, str(exc)
        if key in APPLIED_KEYS:
            applier = self._appliers.get(key)
            if applier is None:
                return ChangeStatus.REJECTED, f"{key} is changed by the running service only"
            status, reason = applier(canonical)
            if status is not ChangeStatus.ACCEPTED:
                return status, reason
        else:
            self._store.config_set(key, canonical)
        log.info("ocpp.config_changed", key=key,
                 value=canonical if definition.readable else "<redacted>")
        for listener in list(self._listeners):
            try:
                listener(key, canonical)
            except Exception:  # a listener bug must not undo a persisted change
                log.exception("ocpp.config_listener_failed", key=key)
        return ChangeStatus.ACCEPTED, ""
