"""What a station keeps of its settings: the OCPP configuration keys the backend (or a technician)
changed, the availability ChangeAvailability left (OCPP 1.6 5.2: it survives a restart) and the
reservations ReserveNow made."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from chargerfw.station.connector import Reservation
from chargerfw.store.database import Database
from chargerfw.store.records import StoreError, check_int, check_time


class ConfigKeyValues:
    """OCPP configuration key values; callers validate them (:mod:`chargerfw.ocpp.config_keys`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> str | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT value FROM config_keys WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def all(self) -> dict[str, str]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT key, value FROM config_keys").fetchall()
        return {r["key"]: r["value"] for r in rows}

    def set(self, key: str, value: str) -> None:
        """Persist one key."""
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise StoreError(f"config key and value must be strings, got {key!r}={value!r}")
        with self._db.tx() as conn:
            conn.execute(
                "INSERT INTO config_keys (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


class Availability:
    """Connector availability (0 = the station); absent means operative."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def set(self, changes: Mapping[int, bool]) -> None:
        """Persist the availability of connectors (0 = the station), all in one commit."""
        rows = []
        for connector_id, operative in changes.items():
            check_int("connector_id", connector_id)
            if not isinstance(operative, bool):
                raise StoreError(f"operative must be true or false, got {operative!r}")
            rows.append((connector_id, int(operative)))
        with self._db.tx() as conn:
            conn.executemany(
                "INSERT INTO availability (connector_id, operative) VALUES (?, ?) "
                "ON CONFLICT (connector_id) DO UPDATE SET operative = excluded.operative", rows)

    def all(self) -> dict[int, bool]:
        """What was persisted: connector id (0 = station) -> operative. Absent = operative."""
        with self._db.read() as conn:
            rows = conn.execute("SELECT connector_id, operative FROM availability").fetchall()
        return {int(r["connector_id"]): bool(r["operative"]) for r in rows}


class Reservations:
    """The reservations the station holds, as (connector id, reservation)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def replace(self, held: Iterable[tuple[int, Reservation]]) -> None:
        """Persist exactly ``held`` (the previous set is replaced), in one commit."""
        rows = []
        for connector_id, r in held:
            check_int("connector_id", connector_id)
            check_int("reservation_id", r.reservation_id, minimum=-(2**63))
            for name, tag in (("id_tag", r.id_tag), ("parent_id_tag", r.parent_id_tag)):
                if tag is not None and not (isinstance(tag, str) and 1 <= len(tag) <= 20):
                    raise StoreError(f"{name} must be 1 to 20 characters, got {tag!r}")
            if r.expires_at is not None:
                check_time("expires_at", r.expires_at)
            rows.append((r.reservation_id, connector_id, r.id_tag, r.parent_id_tag, r.expires_at))
        with self._db.tx() as conn:
            conn.execute("DELETE FROM reservations")
            conn.executemany(
                "INSERT INTO reservations (reservation_id, connector_id, id_tag, parent_id_tag, "
                "expires_at) VALUES (?, ?, ?, ?, ?)", rows)

    def all(self) -> list[tuple[int, Reservation]]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT * FROM reservations ORDER BY connector_id, "
                                "reservation_id").fetchall()
        return [(int(r["connector_id"]),
                 Reservation(int(r["reservation_id"]), r["id_tag"], r["parent_id_tag"],
                             r["expires_at"])) for r in rows]
