"""The CSMS schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

Times are stored as naive UTC and handed back as aware UTC (``UtcDateTime``), so SQLite and
PostgreSQL behave the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC, returned as an aware UTC datetime."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


locations = sa.Table(
    "locations", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("country_code", sa.String(2), nullable=False),
    sa.Column("party_id", sa.String(3), nullable=False),
    sa.Column("publish", sa.Boolean, nullable=False, default=True),
    sa.Column("name", sa.String(255)),
    sa.Column("address", sa.String(45), nullable=False),
    sa.Column("city", sa.String(45), nullable=False),
    sa.Column("postal_code", sa.String(10)),
    sa.Column("country", sa.String(3), nullable=False),
    sa.Column("latitude", sa.String(10), nullable=False),
    sa.Column("longitude", sa.String(11), nullable=False),
    sa.Column("time_zone", sa.String(255), nullable=False),
    # What an eMSP app shows: OCPI Hours, BusinessDetails, Facility list, ParkingType.
    sa.Column("opening_times", sa.JSON),
    sa.Column("charging_when_closed", sa.Boolean),
    sa.Column("operator", sa.JSON),
    sa.Column("facilities", sa.JSON),
    sa.Column("parking_type", sa.String(32)),
    sa.Column("last_updated", UtcDateTime, nullable=False, index=True),
)

charge_points = sa.Table(
    "charge_points", metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    # scrypt hash "scrypt$n$r$p$salt$hash"; NULL means the charger connects without Basic auth.
    sa.Column("password_hash", sa.String(255)),
    sa.Column("location_id", sa.String(36), sa.ForeignKey("locations.id")),
    sa.Column("auto_registered", sa.Boolean, nullable=False, default=False),
    sa.Column("vendor", sa.String(20)),
    sa.Column("model", sa.String(20)),
    sa.Column("serial_number", sa.String(25)),
    sa.Column("firmware_version", sa.String(50)),
    sa.Column("last_boot", UtcDateTime),
    sa.Column("last_heartbeat", UtcDateTime),
    # OCPP SupportedFeatureProfiles as the charger reported them (NULL: not asked yet).
    sa.Column("feature_profiles", sa.String(255)),
    # Whether the charger has a token reader (the operator says; OCPP 1.6 cannot tell).
    sa.Column("rfid_reader", sa.Boolean, nullable=False, default=True,
              server_default="1"),
    # Its OCPP connection, and when we last heard from it (a message, or the disconnect).
    sa.Column("connected", sa.Boolean, nullable=False, default=False,
              server_default="0"),
    sa.Column("last_seen", UtcDateTime),
    # Silent past the grace period: its EVSEs are shown UNKNOWN until it returns.
    sa.Column("offline", sa.Boolean, nullable=False, default=False, server_default="0"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # The OCPP security profile of its latest connection (0-3; NULL: not connected since),
    # and how many connections it opened (a reconnect shows as a new count).
    sa.Column("security_profile", sa.Integer),
    sa.Column("connection_count", sa.Integer, nullable=False, server_default="0"),
    # Set once it connected with a client certificate (security profile 3): Basic auth alone
    # is refused from then on; only the operator clears it (`charger client-certificate`).
    sa.Column("client_certificate_required", sa.Boolean, nullable=False,
              server_default="0"),
    # With several backend processes: the one holding its connection (backend_workers.id),
    # and the address it connected from (who may use its one-time file URLs).
    sa.Column("worker_id", sa.String(40)),
    sa.Column("connected_from", sa.String(64)),
)

# One OCPI EVSE per OCPP connector of a charge point (each can charge on its own).
evses = sa.Table(
    "evses", metadata,
    sa.Column("uid", sa.String(36), primary_key=True),
    sa.Column("location_id", sa.String(36), sa.ForeignKey("locations.id"), nullable=False,
              index=True),
    sa.Column("evse_id", sa.String(48)),
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              nullable=False),
    sa.Column("ocpp_connector_id", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="UNKNOWN"),
    sa.Column("last_updated", UtcDateTime, nullable=False),
    sa.UniqueConstraint("charge_point_id", "ocpp_connector_id",
                        name="uq_evses_charge_point_connector"),
)

connectors = sa.Table(
    "connectors", metadata,
    sa.Column("evse_uid", sa.String(36), sa.ForeignKey("evses.uid"), primary_key=True),
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("standard", sa.String(32), nullable=False),
    sa.Column("format", sa.String(8), nullable=False),
    sa.Column("power_type", sa.String(16), nullable=False),
    sa.Column("max_voltage", sa.Integer, nullable=False),
    sa.Column("max_amperage", sa.Integer, nullable=False),
    sa.Column("max_electric_power", sa.Integer),
    sa.Column("tariff_id", sa.String(36)),
    sa.Column("last_updated", UtcDateTime, nullable=False),
)

connector_status = sa.Table(
    "connector_status", metadata,
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              primary_key=True),
    sa.Column("connector_id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error_code", sa.String(30), nullable=False),
    sa.Column("info", sa.String(50)),
    sa.Column("vendor_id", sa.String(255)),
    sa.Column("vendor_error_code", sa.String(50)),
    sa.Column("timestamp", UtcDateTime),
    sa.Column("received_at", UtcDateTime, nullable=False),
)

partners = sa.Table(
    "partners", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("country_code", sa.String(2)),
    sa.Column("party_id", sa.String(3)),
    sa.Column("role", sa.String(8), nullable=False, default="EMSP"),
    # Our tokens are stored as SHA-256 digests (they are random 256-bit strings).
    sa.Column("token_a_hash", sa.String(64), unique=True),
    sa.Column("token_c_hash", sa.String(64), unique=True),
    # Their token (B/C) is needed in the clear: we send it with every call to them.
    sa.Column("their_token", sa.String(64)),
    sa.Column("their_versions_url", sa.String(255)),
    sa.Column("their_version", sa.String(10)),
    sa.Column("their_endpoints", sa.JSON),
    sa.Column("registered", sa.Boolean, nullable=False, default=False),
    sa.Column("last_updated", UtcDateTime, nullable=False),
)

# The parties the operator gave each partner (``partner add``): what it may register as,
# whose tokens it may hold, and whose sessions and CDRs it sees. A party is one partner's.
partner_parties = sa.Table(
    "partner_parties", metadata,
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("partners.id"), primary_key=True),
    sa.Column("country_code", sa.String(2), primary_key=True),
    sa.Column("party_id", sa.String(3), primary_key=True),
    sa.Column("role", sa.String(8), primary_key=True),
    sa.UniqueConstraint("country_code", "party_id", "role",
                        name="uq_partner_parties_party_role"),
)

# Which party issued a token we do not hold, by the start of its uid: real-time
# authorization asks that party's partner, and nobody when no rule matches.
token_routes = sa.Table(
    "token_routes", metadata,
    sa.Column("uid_prefix", sa.String(36), primary_key=True),
    sa.Column("country_code", sa.String(2), nullable=False),
    sa.Column("party_id", sa.String(3), nullable=False),
)

tokens = sa.Table(
    "tokens", metadata,
    sa.Column("country_code", sa.String(2), primary_key=True),
    sa.Column("party_id", sa.String(3), primary_key=True),
    sa.Column("uid", sa.String(36), primary_key=True),
    sa.Column("type", sa.String(16), primary_key=True),  # uid + type identify a token
    sa.Column("contract_id", sa.String(36), nullable=False),
    sa.Column("valid", sa.Boolean, nullable=False),
    sa.Column("whitelist", sa.String(16), nullable=False),
    # When a card of the site's own stops being accepted (OCPI tokens have no expiry); it is
    # the expiryDate of the OCPP idTagInfo. The parentIdTag is the token's OCPI group_id.
    sa.Column("expires_at", UtcDateTime),
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("partners.id")),
    # The whole OCPI Token object as last stored (GET answers with exactly that).
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("last_updated", UtcDateTime, nullable=False),
    sa.Index("ix_tokens_uid", "uid"),
)

tariffs = sa.Table(
    "tariffs", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("country_code", sa.String(2), nullable=False),
    sa.Column("party_id", sa.String(3), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    # OCPI Tariff object (elements, price components, min/max price, ...).
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("last_updated", UtcDateTime, nullable=False, index=True),
)

reservations = sa.Table(
    "reservations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # OCPP reservationId
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              nullable=False),
    sa.Column("connector_id", sa.Integer, nullable=False),
    sa.Column("id_tag", sa.String(20), nullable=False),
    sa.Column("expiry", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("partners.id")),
    sa.Column("ocpi_reservation_id", sa.String(36), index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

transactions = sa.Table(
    "transactions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # OCPP transactionId
    sa.Column("session_id", sa.String(36), nullable=False, unique=True),  # OCPI Session.id
    # sha256 of (charge point, connector, idTag, timestamp, meterStart): a re-delivered
    # StartTransaction finds its first copy instead of opening a second session.
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              nullable=False),
    sa.Column("connector_id", sa.Integer, nullable=False),
    sa.Column("evse_uid", sa.String(36)),
    sa.Column("location_id", sa.String(36)),
    sa.Column("id_tag", sa.String(20), nullable=False),
    sa.Column("id_tag_status", sa.String(16), nullable=False),
    sa.Column("token_country_code", sa.String(2)),
    sa.Column("token_party_id", sa.String(3)),
    sa.Column("token_type", sa.String(16)),
    sa.Column("contract_id", sa.String(36)),
    sa.Column("auth_method", sa.String(16), nullable=False),
    sa.Column("authorization_reference", sa.String(36)),
    sa.Column("reservation_id", sa.Integer),
    sa.Column("meter_start", sa.BigInteger, nullable=False),
    sa.Column("meter_last", sa.BigInteger, nullable=False),
    sa.Column("meter_stop", sa.BigInteger),
    sa.Column("start_time", UtcDateTime, nullable=False),
    sa.Column("stop_time", UtcDateTime),
    sa.Column("stop_reason", sa.String(20)),
    # Why the backend, not the charger, closed it (an orphan, a start it refused); the CDR's
    # remark.
    sa.Column("remark", sa.String(255)),
    # Open when its charger booted, and when the charger then reported the connector
    # Available: closed as an orphan if no StopTransaction follows within a grace period.
    sa.Column("open_at_boot", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("available_after_boot_at", UtcDateTime),
    sa.Column("status", sa.String(16), nullable=False),  # OCPI SessionStatus
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("tariff_id", sa.String(36)),
    # The OCPI Tariff object as it was when the session started: the driver accepted that
    # one, so later updates (or the tariff's deletion) do not reprice the session.
    sa.Column("tariff", sa.JSON),
    sa.Column("last_updated", UtcDateTime, nullable=False),
    # Completed on an EVSE, its final Session and CDR not built yet: the stop that sets it
    # answers the charger without that work, which a worker does after (``build_due_cdrs``).
    sa.Column("cdr_due", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_transactions_last_updated_id", "last_updated", "id"),
    # The few transactions whose CDR is due, found without reading the others.
    sa.Index("ix_transactions_cdr_due", "id", sqlite_where=sa.text("cdr_due IS 1"),
             postgresql_where=sa.text("cdr_due IS true")),
    # A partner's page of sessions (those on an EVSE, of its tokens' party), read and
    # counted from the index alone.
    sa.Index("ix_transactions_owner_page", "token_country_code", "token_party_id",
             "last_updated", "id", sqlite_where=sa.text("evse_uid IS NOT NULL"),
             postgresql_where=sa.text("evse_uid IS NOT NULL")),
)

meter_values = sa.Table(
    "meter_values", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("charge_point_id", sa.String(48), nullable=False),
    sa.Column("connector_id", sa.Integer, nullable=False),
    sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id")),
    sa.Column("timestamp", UtcDateTime, nullable=False),
    sa.Column("measurand", sa.String(50), nullable=False),
    sa.Column("phase", sa.String(8), nullable=False, default=""),
    sa.Column("context", sa.String(20), nullable=False, default=""),
    sa.Column("unit", sa.String(10), nullable=False, default=""),
    sa.Column("value", sa.Float, nullable=False),
    # A re-delivered MeterValues adds nothing: one row per sample identity.
    sa.UniqueConstraint("charge_point_id", "connector_id", "timestamp", "measurand", "phase",
                        "context", name="uq_meter_values_sample"),
    sa.Index("ix_meter_values_transaction", "transaction_id", "timestamp"),
)

# The OCPI Session of a completed transaction as it was when it completed (as its CDR is):
# listings serve it instead of pricing the session again, while the transaction's
# last_updated is still the one it was made at.
session_objects = sa.Table(
    "session_objects", metadata,
    sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id"),
              primary_key=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("last_updated", UtcDateTime, nullable=False),
)

cdrs = sa.Table(
    "cdrs", metadata,
    sa.Column("id", sa.String(39), primary_key=True),
    sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id"), nullable=False,
              unique=True),
    sa.Column("data", sa.JSON, nullable=False),  # the OCPI CDR, never changed once written
    # The party of its transaction's token (which sees it), as the transaction has it.
    sa.Column("token_country_code", sa.String(2)),
    sa.Column("token_party_id", sa.String(3)),
    sa.Column("last_updated", UtcDateTime, nullable=False),
    sa.Index("ix_cdrs_last_updated_id", "last_updated", "id"),
    sa.Index("ix_cdrs_owner_page", "token_country_code", "token_party_id", "last_updated",
             "id"),
)

# How many rows each party's listing of sessions (transactions on an EVSE) and of CDRs
# holds, for an exact X-Total-Count without counting the rows. Triggers on those tables add
# a row of +1/-1 per change of a row's party (in the changing transaction, so a rollback
# takes it back); a listing sums its parties' rows and, past a few, folds them into one
# (migration 0021). Only appended to by writers: concurrent writers never wait on a shared
# counter row. ``country_code``/``party_id`` are '' for rows whose token party is unknown.
owner_counts = sa.Table(
    "owner_counts", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("listing", sa.String(16), nullable=False),  # "sessions" or "cdrs"
    sa.Column("country_code", sa.String(2), nullable=False),
    sa.Column("party_id", sa.String(3), nullable=False),
    sa.Column("delta", sa.BigInteger, nullable=False),
    sa.Index("ix_owner_counts_owner", "listing", "country_code", "party_id", "delta"),
)

push_queue = sa.Table(
    "push_queue", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("partners.id"), nullable=False),
    sa.Column("module", sa.String(16), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("url", sa.String(512), nullable=False),
    sa.Column("body", sa.JSON),
    sa.Column("status", sa.String(8), nullable=False),  # PENDING, DONE, FAILED
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("last_error", sa.String(500)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("done_at", UtcDateTime),
    sa.Index("ix_push_queue_status_id", "status", "id"),
)

# What each partner holds of each running session, as far as the pushes queued to it say:
# its fields (but charging_periods) and a digest per charging period, in order. The next push
# to that partner PATCHes only what differs and appends only the new periods.
session_pushes = sa.Table(
    "session_pushes", metadata,
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("partners.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id"),
              primary_key=True),
    sa.Column("fields", sa.JSON, nullable=False),
    sa.Column("period_digests", sa.JSON, nullable=False),
    # The PUT that gave the partner the whole session; a push of it that failed since then
    # means the partner's copy is unknown, and the next push is a PUT again.
    sa.Column("base_push_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
              nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

pending_commands = sa.Table(
    "pending_commands", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("partners.id")),
    sa.Column("command", sa.String(20), nullable=False),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("response_url", sa.String(255), nullable=False),
    sa.Column("charge_point_id", sa.String(48)),
    # For START_SESSION: the idTag the charger will present, to tie the session to it.
    sa.Column("id_tag", sa.String(36)),
    sa.Column("status", sa.String(24), nullable=False),  # PENDING or a CommandResultType
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("deadline", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
)

# Parties reachable through a hub partner, as the hub reports them (OCPI ClientInfo).
hub_parties = sa.Table(
    "hub_parties", metadata,
    sa.Column("hub_id", sa.Integer, sa.ForeignKey("partners.id"), primary_key=True),
    sa.Column("country_code", sa.String(2), primary_key=True),
    sa.Column("party_id", sa.String(3), primary_key=True),
    sa.Column("role", sa.String(8), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # OCPI ConnectionStatus
    sa.Column("last_updated", UtcDateTime, nullable=False),
)

# One row whose value changes (by database triggers, see migration 0017) with every change to
# partners, partner_parties or hub_parties: who receives a push is cached until it does.
partner_generation = sa.Table(
    "partner_generation", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.String(32), nullable=False),
)

# Pulls of a partner's token list (tokens Sender): the next pull asks for changes since the
# start of the last successful one.
token_pulls = sa.Table(
    "token_pulls", metadata,
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("partners.id"), primary_key=True),
    sa.Column("last_success_from", UtcDateTime),
    sa.Column("last_attempt_at", UtcDateTime, nullable=False),
    sa.Column("last_error", sa.String(500)),
)

# The OCPP local authorization list each charger holds, as far as it has accepted our
# SendLocalList messages: its version and entries (idTag -> idTagInfo); a Differential push
# sends only what changed since.
local_lists = sa.Table(
    "local_lists", metadata,
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              primary_key=True),
    sa.Column("list_version", sa.BigInteger, nullable=False),
    sa.Column("entries", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# Commands an operator asked the running server to send to a charger (`chargerfw csms cp
# ...`, `local-list push`): the server claims each, sends it over the charger's connection
# and writes the outcome back. ``command`` names what to do, ``params`` its arguments.
operator_commands = sa.Table(
    "operator_commands", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              nullable=False),
    sa.Column("command", sa.String(40), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("requested_at", UtcDateTime, nullable=False),
    sa.Column("claimed_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("outcome", sa.JSON),
    # Who asked: the admin API token's name (None: the CLI on the backend's host).
    sa.Column("requested_by", sa.String(100)),
)

# Tokens of the admin HTTP API (separate from OCPI partners' credentials): a SHA-256 digest
# of each random token, never the token itself.
admin_tokens = sa.Table(
    "admin_tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
)

# What happened at a charger, in order (``id`` is the admin API's events cursor): the
# outcome of each operator command and the status notifications of the processes they start.
# ``kind`` is "command" or the OCPP notification's action; ``data`` its content.
charge_point_events = sa.Table(
    "charge_point_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              nullable=False, index=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    # A security event's type (the whitepaper's, e.g. InvalidChargePointCertificate).
    sa.Column("event_type", sa.String(50), index=True),
)

# Every certificate the fleet CA signed for a charger, and the charger's answer to its
# CertificateSigned (NULL until it answered; NotDelivered when it never got it).
fleet_certificates = sa.Table(
    "fleet_certificates", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              nullable=False, index=True),
    sa.Column("serial", sa.String(40), nullable=False, unique=True),  # hex
    sa.Column("fingerprint", sa.String(64), nullable=False),  # SHA-256 of the DER, hex
    sa.Column("subject", sa.String(500), nullable=False),
    sa.Column("not_before", UtcDateTime, nullable=False),
    sa.Column("not_after", UtcDateTime, nullable=False),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(20)),
    sa.Column("answered_at", UtcDateTime),
    sa.Column("certificate", sa.Text, nullable=False),  # PEM
)

# Site load management: a site (or a sub-feeder of one, ``parent_id``) with a maximum current
# per phase, shared among the charge points assigned to it.
sites = sa.Table(
    "sites", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("max_current_a", sa.Float, nullable=False),  # per phase
    sa.Column("parent_id", sa.String(36), sa.ForeignKey("sites.id")),
    # What each connector of its chargers applies when it loses the backend (per phase).
    sa.Column("fallback_a", sa.Float, nullable=False),
    # The stack level of the charging profiles the backend sends its chargers.
    sa.Column("stack_level", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

site_members = sa.Table(
    "site_members", metadata,
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              primary_key=True),
    sa.Column("site_id", sa.String(36), sa.ForeignKey("sites.id"), nullable=False,
              index=True),
)

# The limit each connector was last given (connector 0: the charger's TxDefaultProfile) and
# the profile that carried it; what the allocation is compared with before sending.
site_allocations = sa.Table(
    "site_allocations", metadata,
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              primary_key=True),
    sa.Column("connector_id", sa.Integer, primary_key=True),
    sa.Column("limit_a", sa.Float, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("profile_id", sa.Integer, nullable=False),
    sa.Column("transaction_id", sa.Integer),
    sa.Column("schedule", sa.JSON, nullable=False),  # the OCPP chargingSchedule sent
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# An eMSP's charging profile on one of its sessions (OCPI chargingprofiles): combined with the
# site's share (the lower wins) into the TxProfile the charger gets.
session_charging_profiles = sa.Table(
    "session_charging_profiles", metadata,
    sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id"),
              primary_key=True),
    sa.Column("partner_id", sa.Integer, sa.ForeignKey("partners.id")),
    sa.Column("profile", sa.JSON, nullable=False),  # the OCPI ChargingProfile
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# What chargers report of their firmware updates and uploads: FirmwareStatusNotification
# ("firmware"), SignedFirmwareStatusNotification ("signed_firmware"),
# DiagnosticsStatusNotification ("diagnostics") and LogStatusNotification ("log"); the newest
# few per charger and kind are kept.
charger_file_statuses = sa.Table(
    "charger_file_statuses", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("request_id", sa.Integer),
    sa.Column("reported_at", UtcDateTime, nullable=False),
    sa.Index("ix_charger_file_statuses_cp_kind", "charge_point_id", "kind", "id"),
)

# Firmware releases published for chargers to download: the file under the backend's data
# directory (``path``, relative to it) with what its manifest says; a signed release also has
# the manufacturer's signing certificate (PEM) and signature (base64) that SignedUpdateFirmware
# carries.
firmware_releases = sa.Table(
    "firmware_releases", metadata,
    sa.Column("version", sa.String(50), primary_key=True),
    sa.Column("file_name", sa.String(255), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=False),
    sa.Column("signing_certificate", sa.Text),
    sa.Column("signature", sa.Text),
)

# One-time URLs: a firmware download ("firmware", bound to a release) or an upload
# ("diagnostics", "log") for one charger. Only the token's SHA-256 is kept; ``used_at`` is set
# when a download completed or an upload was stored, after which the token is refused.
file_tokens = sa.Table(
    "file_tokens", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("release_version", sa.String(50), sa.ForeignKey("firmware_releases.version")),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime),
)

# Files chargers uploaded (diagnostics, logs): where under the data directory, how big.
received_files = sa.Table(
    "received_files", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("charge_point_id", sa.String(48), sa.ForeignKey("charge_points.id"),
              nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("token_id", sa.Integer, sa.ForeignKey("file_tokens.id"), nullable=False),
    sa.Column("file_name", sa.String(255)),  # as the charger named it, if it did
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
)

# The backend processes sharing this database (PostgreSQL only): each renews its lease
# (heartbeat_at, the database's own clock) every few seconds; one whose lease ran out is
# dead, and the chargers it held count as disconnected.
backend_workers = sa.Table(
    "backend_workers", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("heartbeat_at", UtcDateTime, nullable=False),
    # Whether it runs the fleet's once-only work (it holds the leader lock).
    sa.Column("leading", sa.Boolean, nullable=False, server_default="0"),
)

# Requests to a charger asked for by a process that does not hold its connection: the holder
# sends them and writes the answer back (each side is woken by a NOTIFY).
backend_calls = sa.Table(
    "backend_calls", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("charge_point_id", sa.String(48), nullable=False),
    sa.Column("caller_id", sa.String(40), nullable=False),
    sa.Column("holder_id", sa.String(40), nullable=False, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    # pending -> sending -> answered
    sa.Column("state", sa.String(16), nullable=False),
    # result, call_error, timeout or not_connected, and the result's payload or the error
    sa.Column("outcome", sa.String(16)),
    sa.Column("answer", sa.JSON),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
