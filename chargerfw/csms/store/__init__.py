"""The CSMS data layer: ``Store`` (and ``AsyncStore``) over one database, and the values that
go in and out of it.

- ``facade``: ``Store`` composed of one part per aggregate, ``AsyncStore``.
- ``store_engine``: the transactions the parts open, and group commit.
- ``charge_points``, ``locations``, ``tariffs``, ``partners``, ``hubs``, ``tokens``,
  ``transactions``, ``sessions``, ``cdrs``, ``reservations``, ``commands``, ``sites``,
  ``local_lists``, ``operator_commands``, ``charger_files``, ``admin`` (admin API tokens,
  charger events), ``push_queue``:
  one aggregate each, its SQL and its pushes.
- ``parties``: the parties the operator gives partners, and the one rule of who sees what.
- ``ocpi_objects``: OCPI Location, Session and CDR objects built from rows (no SQL).
- ``status``: OCPP connector status -> OCPI EVSE status; when a charger counts as offline.
- ``hashing``: charge point passwords and credentials tokens at rest.
- ``endpoints``: finding a module in a partner's OCPI endpoints.
- ``sql``: the SQL shapes the aggregates share (a page of a listing, an inserted id).
- ``values``: value types (page queries and pages among them), errors, the clock.
"""

from chargerfw.csms.store.endpoints import receiver_url, sender_url
from chargerfw.csms.store.facade import AsyncStore, Store
from chargerfw.csms.store.hashing import (
    GeneratedPassword,
    generate_password,
    hash_password,
    new_credentials_token,
    token_digest,
    verify_password,
)
from chargerfw.csms.store.local_lists import HeldList, ListEntries
from chargerfw.csms.store.parties import Party
from chargerfw.csms.store.partners import PartyNotAllowed
from chargerfw.csms.store.status import evse_status, evse_status_from_ocpp
from chargerfw.csms.store.tokens import ID_TOKEN_MAX_LENGTH, StoredToken
from chargerfw.csms.store.values import (
    AlreadyExists,
    AuthDecision,
    ConnectorSpec,
    CpoIdentity,
    EvseChange,
    EvseSpec,
    LocationDetails,
    LocationSpec,
    NotFound,
    Page,
    PageQuery,
    PushItem,
    StartRequest,
    StoreError,
    utcnow,
)

__all__ = [
    "ID_TOKEN_MAX_LENGTH", "AlreadyExists", "AsyncStore", "AuthDecision", "ConnectorSpec",
    "CpoIdentity", "EvseChange", "GeneratedPassword", "EvseSpec", "HeldList", "ListEntries", "LocationDetails",
    "LocationSpec", "NotFound", "Page", "PageQuery", "Party", "PartyNotAllowed", "PushItem",
    "StartRequest", "Store", "StoredToken", "StoreError", "evse_status",
    "evse_status_from_ocpp", "generate_password", "hash_password", "new_credentials_token", "receiver_url",
    "sender_url", "token_digest", "utcnow", "verify_password",
]
