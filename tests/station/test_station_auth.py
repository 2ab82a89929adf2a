"""Authorization: cache, local list, LocalPreAuthorize, offline rules, stop by tag."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chargerfw.station.auth import (
    AuthConfig,
    Authorizer,
    AuthSource,
    BackendUnavailable,
    IdTagInfo,
    InvalidIdTagError,
    InvalidIdTagInfoError,
    backend_from_wire,
)
from chargerfw.station.enums import AuthorizationStatus

A = AuthorizationStatus
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PAST = NOW - timedelta(days=1)
FUTURE = NOW + timedelta(days=1)


class MemoryStore:
    def __init__(self) -> None:
        self.cache: dict[str, IdTagInfo] = {}
        self.local_list: dict[str, IdTagInfo] = {}

    def cache_get(self, id_tag: str) -> IdTagInfo | None:
        return self.cache.get(id_tag)

    def cache_put(self, id_tag: str, info: IdTagInfo) -> None:
        self.cache[id_tag] = info

    def cache_clear(self) -> None:
        self.cache.clear()

    def local_list_get(self, id_tag: str) -> IdTagInfo | None:
        return self.local_list.get(id_tag)


class Backend:
    def __init__(self, answers: dict[str, IdTagInfo] | None = None, online: bool = True) -> None:
        self.answers = answers or {}
        self.online = online
        self.calls: list[str] = []

    async def __call__(self, id_tag: str) -> IdTagInfo:
        self.calls.append(id_tag)
        if not self.online:
            raise BackendUnavailable("no connection")
        return self.answers.get(id_tag, IdTagInfo(A.INVALID))


# Where the tag is known locally.
WHERE = {
    "unknown": ({}, {}),
    "list ok": ({"T": IdTagInfo(A.ACCEPTED, FUTURE, "P")}, {}),
    "list blocked": ({"T": IdTagInfo(A.BLOCKED)}, {}),
    "cache ok": ({}, {"T": IdTagInfo(A.ACCEPTED, None, "P")}),
    "cache expired": ({}, {"T": IdTagInfo(A.ACCEPTED, PAST)}),
    "cache blocked": ({}, {"T": IdTagInfo(A.BLOCKED)}),
    "list blocked, cache ok": ({"T": IdTagInfo(A.BLOCKED)}, {"T": IdTagInfo(A.ACCEPTED)}),
}

PRE = {"local_pre_authorize": True}
NO_OFFLINE = {"local_authorize_offline": False}
UNKNOWN_OK = {"allow_offline_tx_for_unknown_id": True}
NO_CACHE = {"authorization_cache_enabled": False}
NO_LIST = {"local_auth_list_enabled": False}

# (online, where, backend answer, config) -> (accepted, status, source, backend asked)
TABLE = [
    # -- online, LocalPreAuthorize off: the backend decides every time
    (True, "unknown", A.ACCEPTED, {}, (True, A.ACCEPTED, AuthSource.BACKEND, True)),
    (True, "unknown", A.BLOCKED, {}, (False, A.BLOCKED, AuthSource.BACKEND, True)),
    (True, "cache ok", A.BLOCKED, {}, (False, A.BLOCKED, AuthSource.BACKEND, True)),
    (True, "list ok", A.ACCEPTED, {}, (True, A.ACCEPTED, AuthSource.BACKEND, True)),
    (True, "unknown", A.CONCURRENT_TX, {}, (False, A.CONCURRENT_TX, AuthSource.BACKEND, True)),
    # -- online, LocalPreAuthorize on: valid local entries start at once
    (True, "list ok", A.BLOCKED, PRE, (True, A.ACCEPTED, AuthSource.LOCAL_LIST, False)),
    (True, "cache ok", A.BLOCKED, PRE, (True, A.ACCEPTED, AuthSource.CACHE, False)),
    (True, "cache expired", A.ACCEPTED, PRE, (True, A.ACCEPTED, AuthSource.BACKEND, True)),
    (True, "cache blocked", A.ACCEPTED, PRE, (True, A.ACCEPTED, AuthSource.BACKEND, True)),
    (True, "list blocked, cache ok", A.ACCEPTED, PRE, (True, A.ACCEPTED, AuthSource.BACKEND, True)),
    (True, "unknown", A.INVALID, PRE, (False, A.INVALID, AuthSource.BACKEND, True)),
    (True, "cache ok", A.BLOCKED, {**PRE, **NO_CACHE}, (False, A.BLOCKED, AuthSource.BACKEND, True)),
    (True, "list ok", A.BLOCKED, {**PRE, **NO_LIST}, (False, A.BLOCKED, AuthSource.BACKEND, True)),
    # -- offline, LocalAuthorizeOffline on (default)
    (False, "list ok", None, {}, (True, A.ACCEPTED, AuthSource.LOCAL_LIST, True)),
    (False, "cache ok", None, {}, (True, A.ACCEPTED, AuthSource.CACHE, True)),
    (False, "cache expired", None, {}, (False, A.EXPIRED, AuthSource.CACHE, True)),
    (False, "cache blocked", None, UNKNOWN_OK, (False, A.BLOCKED, AuthSource.CACHE, True)),
    (False, "list blocked", None, UNKNOWN_OK, (False, A.BLOCKED, AuthSource.LOCAL_LIST, True)),
    (False, "list blocked, cache ok", None, {}, (False, A.BLOCKED, AuthSource.LOCAL_LIST, True)),
    (False, "unknown", None, {}, (False, A.INVALID, AuthSource.NONE, True)),
    (False, "unknown", None, UNKNOWN_OK, (True, A.ACCEPTED, AuthSource.OFFLINE_UNKNOWN, True)),
    (False, "cache ok", None, NO_CACHE, (False, A.INVALID, AuthSource.NONE, True)),
    (False, "cache ok", None, {**NO_CACHE, **UNKNOWN_OK}, (True, A.ACCEPTED, AuthSource.OFFLINE_UNKNOWN, True)),
    (False, "list ok", None, NO_LIST, (False, A.INVALID, AuthSource.NONE, True)),
    (False, "list blocked, cache ok", None, NO_LIST, (True, A.ACCEPTED, AuthSource.CACHE, True)),
    # -- offline, LocalAuthorizeOffline off: list and cache are not consulted
    (False, "list ok", None, NO_OFFLINE, (False, A.INVALID, AuthSource.NONE, True)),
    (False, "cache ok", None, NO_OFFLINE, (False, A.INVALID, AuthSource.NONE, True)),
    (False, "cache blocked", None, {**NO_OFFLINE, **UNKNOWN_OK}, (True, A.ACCEPTED, AuthSource.OFFLINE_UNKNOWN, True)),
    # -- LocalPreAuthorize with a valid entry does not even try a backend that is down
    (False, "cache ok", None, PRE, (True, A.ACCEPTED, AuthSource.CACHE, False)),
    (False, "cache expired", None, PRE, (False, A.EXPIRED, AuthSource.CACHE, True)),
]  # fmt: skip


def make(
    where: str, online: bool, answer: A | None, config: dict
) -> tuple[Authorizer, MemoryStore, Backend]:
    store = MemoryStore()
    local_list, cache = WHERE[where]
    store.local_list.update(local_list)
    store.cache.update(cache)
    backend = Backend({"T": IdTagInfo(answer, None, "P")} if answer else {}, online=online)
    auth = Authorizer(store, backend, AuthConfig(**config), now=lambda: NOW)
    return auth, store, backend


@pytest.mark.parametrize(
    ("online", "where", "answer", "config", "expected"),
    TABLE,
    ids=[f"{'on' if r[0] else 'off'}-{r[1]}-{r[2]}-{'+'.join(r[3]) or 'defaults'}" for r in TABLE],
)
async def test_authorize_table(online, where, answer, config, expected):
    auth, _store, backend = make(where, online, answer, config)
    decision = await auth.authorize("T")
    accepted, status, source, asked = expected
    assert (decision.accepted, decision.status, decision.source) == (accepted, status, source)
    # Decided under the offline rules exactly when the backend was asked and was down.
    assert decision.online is (online or not asked)
    assert (backend.calls == ["T"]) is asked


async def test_backend_answer_is_cached_only_when_the_cache_is_enabled():
    auth, store, _ = make("unknown", True, A.ACCEPTED, {})
    await auth.authorize("T")
    assert store.cache["T"] == IdTagInfo(A.ACCEPTED, None, "P")
    auth, store, _ = make("unknown", True, A.ACCEPTED, NO_CACHE)
    await auth.authorize("T")
    assert store.cache == {}


async def test_cached_tag_then_goes_offline():
    auth, store, backend = make("unknown", True, A.ACCEPTED, {})
    assert (await auth.authorize("T")).accepted
    backend.online = False
    decision = await auth.authorize("T")
    assert (decision.accepted, decision.source, decision.online) == (True, AuthSource.CACHE, False)


async def test_blocked_answer_replaces_accepted_cache_entry():
    auth, store, backend = make("cache ok", True, A.BLOCKED, {})
    assert not (await auth.authorize("T")).accepted
    backend.online = False
    assert not (await auth.authorize("T")).accepted


async def test_local_list_conflict_is_reported():
    auth, _, _ = make("list ok", True, A.BLOCKED, {})
    decision = await auth.authorize("T")
    assert not decision.accepted and decision.local_list_conflict
    auth, _, _ = make("list ok", True, A.ACCEPTED, {})
    assert not (await auth.authorize("T")).local_list_conflict


async def test_is_online_false_skips_the_backend():
    store = MemoryStore()
    backend = Backend()
    auth = Authorizer(
        store, backend, AuthConfig(allow_offline_tx_for_unknown_id=True), is_online=lambda: False
    )
    decision = await auth.authorize("T")
    assert decision.source is AuthSource.OFFLINE_UNKNOWN and backend.calls == []


async def test_slow_backend_counts_as_offline():
    async def slow(_id_tag: str) -> IdTagInfo:
        await asyncio.sleep(5)
        return IdTagInfo(A.ACCEPTED)

    store = MemoryStore()
    store.cache["T"] = IdTagInfo(A.ACCEPTED)
    auth = Authorizer(store, slow, AuthConfig(authorize_timeout_s=0.05))
    decision = await auth.authorize("T")
    assert (decision.accepted, decision.source, decision.online) == (True, AuthSource.CACHE, False)


async def test_remember_and_clear_cache():
    auth, store, _ = make("unknown", True, None, {})
    auth.remember("T", IdTagInfo(A.ACCEPTED, FUTURE))
    assert store.cache["T"].expiry_date == FUTURE
    auth.clear_cache()
    assert store.cache == {}


@pytest.mark.parametrize(
    ("started_by", "started_parent", "presented", "where", "online", "expected", "asked"),
    [
        ("T", None, "T", "unknown", True, True, False),  # same tag: no Authorize needed
        ("AB12", None, "ab12", "unknown", False, True, False),  # CiString: case-insensitive
        ("X", None, "T", "list ok", True, False, False),  # no parent on the transaction
        ("X", "P", "T", "list ok", True, True, False),  # parent from the list
        ("X", "p", "T", "cache ok", False, True, False),  # parent from the cache, offline
        ("X", "P", "T", "unknown", True, True, True),  # parent from Authorize
        ("X", "Q", "T", "unknown", True, False, True),  # a different group
        ("X", "P", "T", "unknown", False, False, True),  # offline and unknown: cannot tell
    ],
)
async def test_may_stop(started_by, started_parent, presented, where, online, expected, asked):
    auth, _, backend = make(where, online, A.ACCEPTED, {})
    assert await auth.may_stop(started_by, started_parent, presented) is expected
    assert bool(backend.calls) is asked


@pytest.mark.parametrize("bad", ["", "X" * 21, None, 42])
async def test_bad_id_tags_are_typed_errors_and_store_nothing(bad):
    auth, store, backend = make("unknown", True, A.ACCEPTED, {})
    with pytest.raises(InvalidIdTagError, match="idTag must be"):
        await auth.authorize(bad)
    assert store.cache == {} and backend.calls == []


def test_id_tag_info_validation_and_expiry():
    assert IdTagInfo("Accepted").status is A.ACCEPTED  # as read back from JSON
    with pytest.raises(ValueError, match="unknown authorization status"):
        IdTagInfo("Maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expiry_date"):
        IdTagInfo(A.ACCEPTED, "tomorrow")  # type: ignore[arg-type]
    naive = IdTagInfo(A.ACCEPTED, datetime(2026, 1, 1))
    assert naive.expiry_date == datetime(2026, 1, 1, tzinfo=UTC)
    info = IdTagInfo(A.ACCEPTED, NOW)
    assert info.status_at(NOW - timedelta(seconds=1)) is A.ACCEPTED
    assert info.status_at(NOW) is A.EXPIRED
    assert IdTagInfo(A.BLOCKED, FUTURE).status_at(NOW) is A.BLOCKED


def test_auth_config_from_keys():
    config = AuthConfig.from_keys(
        {"LocalPreAuthorize": "true", "AllowOfflineTxForUnknownId": True, "Other": "x"}
    )
    assert config.local_pre_authorize and config.allow_offline_tx_for_unknown_id
    assert config.authorization_cache_enabled  # default kept
    with pytest.raises(ValueError, match="LocalAuthorizeOffline: expected true or false"):
        AuthConfig.from_keys({"LocalAuthorizeOffline": "yes"})


async def test_with_the_sqlite_store(tmp_path):
    """The project's Store implements AuthStore: entries round-trip with status and expiry."""
    from chargerfw.store import Store

    with Store(tmp_path / "station.db") as store:
        backend = Backend({"T": IdTagInfo(A.ACCEPTED, FUTURE, "P")})
        auth = Authorizer(store, backend, now=lambda: NOW)
        assert (await auth.authorize("T")).accepted
        backend.online = False
        decision = await auth.authorize("T")
        assert (decision.accepted, decision.source, decision.parent_id_tag) == (
            True,
            AuthSource.CACHE,
            "P",
        )
        store.local_list_apply(1, {"L": IdTagInfo(A.BLOCKED)}, full=True)
        assert (await auth.authorize("L")).status is A.BLOCKED
        auth.clear_cache()
        assert not (await auth.authorize("T")).accepted


def test_id_tag_info_wire_round_trip():
    wire = {"status": "Accepted", "expiryDate": "2026-11-22T12:00:00Z", "parentIdTag": "P"}
    info = IdTagInfo.from_wire(wire)
    assert info == IdTagInfo(A.ACCEPTED, FUTURE, "P")
    assert IdTagInfo.from_wire(info.to_wire()) == info
    assert IdTagInfo.from_wire({"status": "Blocked"}).to_wire() == {"status": "Blocked"}


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"status": "Fine"}, "idTagInfo.status: unknown value 'Fine'"),
        ({}, "idTagInfo.status: unknown value None"),
        ({"status": "Accepted", "expiryDate": "soon"}, "idTagInfo.expiryDate: not ISO 8601"),
        ({"status": "Accepted", "parentIdTag": "P" * 21}, "idTagInfo.parentIdTag"),
        (["Accepted"], "must be an object"),
    ],
)
def test_bad_wire_id_tag_info(wire, message):
    with pytest.raises(InvalidIdTagInfoError, match=message):
        IdTagInfo.from_wire(wire)


async def test_backend_from_wire_adapter():
    answers = {"T": {"status": "Accepted", "parentIdTag": "P"}, "BAD": {"status": "??"}}

    async def client_authorize(id_tag: str):
        return answers.get(id_tag)

    store = MemoryStore()
    auth = Authorizer(
        store, backend_from_wire(client_authorize), AuthConfig(allow_offline_tx_for_unknown_id=True)
    )
    decision = await auth.authorize("T")
    assert (decision.accepted, decision.source, decision.parent_id_tag) == (
        True,
        AuthSource.BACKEND,
        "P",
    )
    offline = await auth.authorize("U")  # None from the client: offline rules
    assert (offline.source, offline.online) == (AuthSource.OFFLINE_UNKNOWN, False)
    bad = await auth.authorize("BAD")  # malformed answer: offline rules, nothing cached
    assert bad.source is AuthSource.OFFLINE_UNKNOWN
    assert "BAD" not in store.cache
