"""The charging profiles the backend installed (OCPP 1.6 Smart Charging): they keep applying
after a restart or a power cut, so every change is one durable (fsynced) commit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from chargerfw.station.charging_profiles import (
    InstalledProfile,
    ProfileRejected,
    profile_from_wire,
    profile_to_wire,
)
from chargerfw.store.database import Database
from chargerfw.store.records import StoreError, check_int


class ChargingProfiles:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> tuple[InstalledProfile, ...]:
        """Every installed profile, in the order they were installed."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT connector_id, awaiting_start, profile FROM charging_profiles "
                "ORDER BY installed_at, profile_id").fetchall()
        profiles = []
        for row in rows:
            try:
                profile = profile_from_wire(json.loads(row["profile"]))
            except (ProfileRejected, ValueError) as exc:
                raise StoreError(f"a stored charging profile is unreadable: {exc}") from exc
            profiles.append(InstalledProfile(int(row["connector_id"]), profile,
                                             bool(row["awaiting_start"])))
        return tuple(profiles)

    def replace(self, remove: Iterable[InstalledProfile],
                add: Iterable[InstalledProfile] = ()) -> None:
        """Remove some profiles and add (or update) others, in one durable commit."""
        removed = [i.profile.profile_id for i in remove]
        rows = []
        for i in add:
            check_int("connector_id", i.connector_id)
            rows.append((i.profile.profile_id, i.connector_id, int(i.awaiting_start),
                         json.dumps(profile_to_wire(i.profile), separators=(",", ":"))))
        now = time.time()
        with self._db.tx() as conn:
            conn.executemany("DELETE FROM charging_profiles WHERE profile_id = ?",
                             [(pid,) for pid in removed])
            conn.executemany(
                "INSERT INTO charging_profiles "
                "(profile_id, connector_id, awaiting_start, profile, installed_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (profile_id) DO UPDATE SET "
                "connector_id = excluded.connector_id, "
                "awaiting_start = excluded.awaiting_start, profile = excluded.profile",
                [(*row, now) for row in rows])
