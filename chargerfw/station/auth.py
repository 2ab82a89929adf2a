"""Authorization decisions: authorization cache, local list, and the offline rules of OCPP 1.6.

Rules implemented (OCPP 1.6 "Local Authorization & Offline Behavior": Authorization Cache,
Local Authorization List, Unknown Offline Authorization; and the Core configuration keys):

* AuthorizationCacheEnabled / LocalAuthListEnabled: whether the cache / the list is consulted.
  The list takes precedence over the cache. The cache keeps the latest IdTagInfo the backend gave
  for a tag (Authorize.conf, StartTransaction.conf, StopTransaction.conf: :meth:`remember`).
* Validity: an entry is valid when its status is Accepted and its expiryDate (if any) has not
  passed; an Accepted entry past its expiry counts as Expired.
* LocalPreAuthorize (online): a tag valid in the list or cache is accepted at once without
  waiting for Authorize.conf; anything else is asked of the backend.
* LocalAuthorizeOffline (offline): a tag valid in the list or cache is accepted; a tag found
  there but not valid (Blocked, Expired, Invalid, ConcurrentTx) is refused.
* AllowOfflineTxForUnknownId (offline): a tag in neither list nor cache is accepted when true.
  The backend may invalidate it later in StartTransaction.conf, where StopTransactionOnInvalidId
  and MaxEnergyOnInvalidId apply (the connector state machine does that part).
* A backend answer that differs from a valid local-list entry is reported as a
  LocalListConflict error code for a StatusNotification; the backend's answer wins.
* Stop by tag (Stop Transaction): the tag that started the transaction may
  always stop it without asking; another tag may stop it when it has the same parentIdTag,
  found in the list, the cache, or by an Authorize.req.

The store is a small protocol (:class:`AuthStore`), implemented by ``chargerfw.store.Store``;
the backend is an ``async`` callable that raises :class:`BackendUnavailable` when offline, so
this module does not depend on any OCPP library.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Protocol

from chargerfw.logs import get_logger
from chargerfw.station.enums import AuthorizationStatus

log = get_logger(__name__)

MAX_ID_TAG_LENGTH = 20  # OCPP 1.6 IdToken: CiString20Type


class InvalidIdTagError(ValueError):
    """An idTag that OCPP 1.6 cannot carry (empty, too long, not text)."""


class InvalidIdTagInfoError(ValueError):
    """An idTagInfo from the backend that does not follow OCPP 1.6."""


class BackendUnavailable(Exception):
    """The backend cannot answer now (offline, timeout): apply the offline rules."""


def check_id_tag(id_tag: object) -> str:
    if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= MAX_ID_TAG_LENGTH:
        raise InvalidIdTagError(
            f"idTag must be a string of 1..{MAX_ID_TAG_LENGTH} characters, got {id_tag!r}"
        )
    return id_tag


def same_tag(a: str | None, b: str | None) -> bool:
    """idTags are CiString: compared without regard to case."""
    return a is not None and b is not None and a.casefold() == b.casefold()


@dataclass(frozen=True, slots=True)
class IdTagInfo:
    """OCPP 1.6 IdTagInfo. ``expiry_date`` is timezone-aware (naive values are taken as UTC)."""

    status: AuthorizationStatus
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None

    def __post_init__(self) -> None:
        try:
            status = AuthorizationStatus(self.status)
        except ValueError:
            raise ValueError(f"unknown authorization status {self.status!r}") from None
        object.__setattr__(self, "status", status)
        if self.expiry_date is not None:
            if not isinstance(self.expiry_date, datetime):
                raise ValueError(f"expiry_date must be a datetime, got {self.expiry_date!r}")
            if self.expiry_date.tzinfo is None:
                object.__setattr__(self, "expiry_date", self.expiry_date.replace(tzinfo=UTC))
        if self.parent_id_tag is not None:
            check_id_tag(self.parent_id_tag)

    @classmethod
    def from_wire(cls, wire: Mapping[str, object]) -> IdTagInfo:
        """From OCPP JSON keys (status, expiryDate, parentIdTag); a bad value raises
        :class:`InvalidIdTagInfoError` naming the key."""
        if not isinstance(wire, Mapping):
            raise InvalidIdTagInfoError(f"idTagInfo must be an object, got {type(wire).__name__}")
        status = wire.get("status")
        try:
            status = AuthorizationStatus(status)  # type: ignore[arg-type]
        except ValueError:
            raise InvalidIdTagInfoError(f"idTagInfo.status: unknown value {status!r}") from None
        expiry = wire.get("expiryDate")
        if expiry is not None:
            try:
                expiry = datetime.fromisoformat(str(expiry))
            except ValueError:
                raise InvalidIdTagInfoError(
                    f"idTagInfo.expiryDate: not ISO 8601: {expiry!r}"
                ) from None
        parent = wire.get("parentIdTag")
        try:
            return cls(status, expiry, parent)  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidIdTagInfoError(f"idTagInfo.parentIdTag: {exc}") from None

    def to_wire(self) -> dict[str, str]:
        wire = {"status": self.status.value}
        if self.expiry_date is not None:
            wire["expiryDate"] = self.expiry_date.isoformat()
        if self.parent_id_tag is not None:
            wire["parentIdTag"] = self.parent_id_tag
        return wire

    def status_at(self, now: datetime) -> AuthorizationStatus:
        """The status as of ``now``: Accepted turns Expired once ``expiry_date`` has passed."""
        if (
            self.status is AuthorizationStatus.ACCEPTED
            and self.expiry_date is not None
            and self.expiry_date <= now
        ):
            return AuthorizationStatus.EXPIRED
        return self.status

    def valid_at(self, now: datetime) -> bool:
        return self.status_at(now) is AuthorizationStatus.ACCEPTED


class AuthStore(Protocol):
    """Persistence the authorizer needs. ``chargerfw.store.Store`` implements it (SQLite)."""

    def cache_get(self, id_tag: str) -> IdTagInfo | None: ...

    def cache_put(self, id_tag: str, info: IdTagInfo) -> None: ...

    def cache_clear(self) -> None: ...

    def local_list_get(self, id_tag: str) -> IdTagInfo | None: ...


BackendAuthorize = Callable[[str], Awaitable[IdTagInfo]]


def backend_from_wire(
    authorize: Callable[[str], Awaitable[Mapping[str, object] | None]],
) -> BackendAuthorize:
    """Adapt an OCPP client's ``authorize(id_tag) -> wire idTagInfo | None`` (None: offline or
    no answer) to the :class:`Authorizer`'s backend callable. A malformed idTagInfo counts as
    no answer, so the offline rules apply and nothing is cached."""

    async def backend_authorize(id_tag: str) -> IdTagInfo:
        wire = await authorize(id_tag)
        if wire is None:
            raise BackendUnavailable("no answer to Authorize")
        try:
            return IdTagInfo.from_wire(wire)
        except InvalidIdTagInfoError as exc:
            log.warning("auth.bad_id_tag_info", error=str(exc))
            raise BackendUnavailable(str(exc)) from None

    return backend_authorize


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """The OCPP 1.6 configuration keys that steer authorization (defaults: the spec's usual)."""

    authorization_cache_enabled: bool = True  # AuthorizationCacheEnabled
    local_auth_list_enabled: bool = True  # LocalAuthListEnabled
    local_pre_authorize: bool = False  # LocalPreAuthorize
    local_authorize_offline: bool = True  # LocalAuthorizeOffline
    allow_offline_tx_for_unknown_id: bool = False  # AllowOfflineTxForUnknownId
    authorize_timeout_s: float = 10.0  # how long an Authorize may take before we call it offline

    KEYS = {
        "AuthorizationCacheEnabled": "authorization_cache_enabled",
        "LocalAuthListEnabled": "local_auth_list_enabled",
        "LocalPreAuthorize": "local_pre_authorize",
        "LocalAuthorizeOffline": "local_authorize_offline",
        "AllowOfflineTxForUnknownId": "allow_offline_tx_for_unknown_id",
    }

    @classmethod
    def from_keys(
        cls, values: Mapping[str, object], authorize_timeout_s: float = 10.0
    ) -> AuthConfig:
        """Build from OCPP key values (bools, or the strings "true"/"false" as on the wire).
        Keys not given keep their default; a value that is not a boolean is a ValueError."""
        kwargs: dict[str, object] = {"authorize_timeout_s": authorize_timeout_s}
        for key, attr in cls.KEYS.items():
            if key not in values:
                continue
            value = values[key]
            if isinstance(value, str) and value.lower() in ("true", "false"):
                value = value.lower() == "true"
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected true or false, got {value!r}")
            kwargs[attr] = value
        return cls(**kwargs)  # type: ignore[arg-type]


assert {f.name for f in fields(AuthConfig)} >= set(AuthConfig.KEYS.values())


class AuthSource(enum.StrEnum):
    BACKEND = "backend"  # Authorize.conf
    LOCAL_LIST = "local_list"
    CACHE = "cache"
    OFFLINE_UNKNOWN = "offline_unknown"  # AllowOfflineTxForUnknownId
    NONE = "none"  # offline, nothing allowed it


@dataclass(frozen=True, slots=True)
class AuthDecision:
    id_tag: str
    accepted: bool
    status: AuthorizationStatus  # effective status (expiry applied)
    source: AuthSource
    parent_id_tag: str | None = None
    online: bool = True  # False: decided under the offline rules
    local_list_conflict: bool = False  # report LocalListConflict in a StatusNotification


def _decision(
    id_tag: str, info: IdTagInfo, source: AuthSource, now: datetime, online: bool
) -> AuthDecision:
    status = info.status_at(now)
    return AuthDecision(
        id_tag, status is AuthorizationStatus.ACCEPTED, status, source, info.parent_id_tag, online
    )


class Authorizer:
    """Decides whether a presented tag may start, and who may stop.

    ``config`` may be replaced at any time (ChangeConfiguration); ``backend_authorize`` sends an
    Authorize.req and returns its IdTagInfo, or raises :class:`BackendUnavailable`.
    """

    def __init__(
        self,
        store: AuthStore,
        backend_authorize: BackendAuthorize,
        config: AuthConfig | None = None,
        *,
        is_online: Callable[[], bool] = lambda: True,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.config = config or AuthConfig()
        self._backend_authorize = backend_authorize
        self._is_online = is_online
        self._now = now

    # ---- lookups ----------------------------------------------------------------------------

    def _local(self, id_tag: str) -> tuple[IdTagInfo, AuthSource] | None:
        """The list entry, else the cache entry, as the keys allow."""
        if self.config.local_auth_list_enabled:
            info = self.store.local_list_get(id_tag)
            if info is not None:
                return info, AuthSource.LOCAL_LIST
        if self.config.authorization_cache_enabled:
            info = self.store.cache_get(id_tag)
            if info is not None:
                return info, AuthSource.CACHE
        return None

    async def _ask_backend(self, id_tag: str) -> IdTagInfo:
        """Authorize.req; BackendUnavailable when offline, on timeout or transport failure."""
        import asyncio  # the station core is loaded without it by the CLI's direct path

        if not self._is_online():
            raise BackendUnavailable("offline")
        try:
            async with asyncio.timeout(self.config.authorize_timeout_s):
                info = await self._backend_authorize(id_tag)
        except TimeoutError:
            raise BackendUnavailable(
                f"Authorize timed out after {self.config.authorize_timeout_s:g} s"
            ) from None
        if not isinstance(info, IdTagInfo):
            raise TypeError(f"backend_authorize must return IdTagInfo, got {type(info).__name__}")
        self.remember(id_tag, info)
        return info

    def remember(self, id_tag: str, info: IdTagInfo) -> None:
        """Keep the backend's latest word on a tag (Authorize, Start- and StopTransaction.conf)."""
        if self.config.authorization_cache_enabled:
            self.store.cache_put(check_id_tag(id_tag), info)

    def clear_cache(self) -> None:
        """ClearCache.req."""
        self.store.cache_clear()

    # ---- decisions --------------------------------------------------------------------------

    async def authorize(self, id_tag: str) -> AuthDecision:
        """May ``id_tag`` start a transaction? Never raises for a backend outage."""
        check_id_tag(id_tag)
        now = self._now()
        local = self._local(id_tag)
        if local is not None and self.config.local_pre_authorize and self._is_online():
            info, source = local
            if info.valid_at(now):
                return _decision(id_tag, info, source, now, online=True)
        try:
            info = await self._ask_backend(id_tag)
        except BackendUnavailable as exc:
            log.info("auth.offline", reason=str(exc))
            return self._offline_decision(id_tag, local, now)
        decision = _decision(id_tag, info, AuthSource.BACKEND, now, online=True)
        if local is not None and local[1] is AuthSource.LOCAL_LIST:
            list_info = local[0]
            if list_info.valid_at(now) != decision.accepted:
                log.warning(
                    "auth.local_list_conflict",
                    list_status=list_info.status.value,
                    backend=info.status.value,
                )
                decision = replace(decision, local_list_conflict=True)
        return decision

    def _offline_decision(
        self, id_tag: str, local: tuple[IdTagInfo, AuthSource] | None, now: datetime
    ) -> AuthDecision:
        if self.config.local_authorize_offline and local is not None:
            info, source = local
            return _decision(id_tag, info, source, now, online=False)
        # Without LocalAuthorizeOffline the list and cache are not consulted offline, so every
        # tag is "unknown" and AllowOfflineTxForUnknownId alone decides.
        if self.config.allow_offline_tx_for_unknown_id:
            return AuthDecision(
                id_tag, True, AuthorizationStatus.ACCEPTED, AuthSource.OFFLINE_UNKNOWN, online=False
            )
        return AuthDecision(
            id_tag, False, AuthorizationStatus.INVALID, AuthSource.NONE, online=False
        )

    async def parent_of(self, id_tag: str) -> str | None:
        """The parentIdTag of a tag: from the list or the cache, else by an Authorize."""
        local = self._local(id_tag)
        if local is not None and local[0].parent_id_tag is not None:
            return local[0].parent_id_tag
        try:
            return (await self._ask_backend(id_tag)).parent_id_tag
        except BackendUnavailable:
            return None

    async def may_stop(self, started_by: str, started_parent: str | None, presented: str) -> bool:
        """May ``presented`` stop a transaction that ``started_by`` (with ``started_parent``)
        started? The same tag always may; another only with the same, known parentIdTag."""
        check_id_tag(presented)
        if same_tag(started_by, presented):
            return True
        if started_parent is None:
            return False
        return same_tag(started_parent, await self.parent_of(presented))
