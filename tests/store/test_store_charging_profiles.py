"""The store keeps the installed charging profiles across a reopen, each change one commit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chargerfw.station.charging_profiles import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    InstalledProfile,
    RecurrencyKind,
    SchedulePeriod,
)
from chargerfw.store import Store, StoreError


def installed(pid: int, connector_id: int = 1, limit: float = 10.0,
              awaiting: bool = False) -> InstalledProfile:
    return InstalledProfile(connector_id, ChargingProfile(
        pid, 1, ChargingProfilePurpose.TX_DEFAULT, ChargingProfileKind.RECURRING,
        ChargingSchedule(ChargingRateUnit.WATTS, (SchedulePeriod(0, limit, 1),), 3600,
                         datetime(2024, 1, 1, 22, tzinfo=UTC), 1400.0),
        RecurrencyKind.DAILY), awaiting)


def test_profiles_survive_a_reopen(tmp_path):
    path = tmp_path / "state.db"
    with Store(path) as store:
        assert store.charging_profiles() == ()
        store.charging_profiles_replace([], [installed(1), installed(2, 0), installed(3)])
        store.charging_profiles_replace([installed(2, 0)], [installed(3, 1, 16.0, True)])
    with Store(path) as store:
        assert store.charging_profiles() == (installed(1), installed(3, 1, 16.0, True))


def test_bad_input_changes_nothing(tmp_path):
    with Store(tmp_path / "state.db") as store:
        store.charging_profiles_replace([], [installed(1)])
        with pytest.raises(StoreError):
            store.charging_profiles_replace([installed(1)], [installed(2, -1)])
        assert store.charging_profiles() == (installed(1),)


def test_an_unreadable_row_is_a_store_error(tmp_path):
    with Store(tmp_path / "state.db") as store:
        store.charging_profiles_replace([], [installed(1)])
        with store._db.tx() as conn:
            conn.execute("UPDATE charging_profiles SET profile = '{\"stack_level\": 1}'")
        with pytest.raises(StoreError, match="unreadable"):
            store.charging_profiles()
