"""``Store``: the station's durable state behind one name, for the station core's authorizer,
the OCPP layer, the runtime and the technician's commands.

One SQLite file (:class:`~chargerfw.store.database.Database`: WAL, fsync on every commit that
matters) holds one part per kind of record: the OCPP configuration keys, the availability and
the reservations (``settings``), the authorization cache and local list (``authorization``),
transactions and the outbox that reports them (``transactions``, ``outbox``), the fault history
(``faults``), the firmware update's state (``firmware``), the charging profiles the backend
installed (``charging_profiles``), the security log (``security_log``) and the ring of recent
OCPP frames (``frames``). ``Store`` offers every part's methods under
one name, so callers neither know which part holds a method nor wire the parts; schema changes
are the list of migrations in ``schema``.
"""

from __future__ import annotations

from pathlib import Path

from chargerfw.store.authorization import AuthorizationCache, LocalList
from chargerfw.store.charging_profiles import ChargingProfiles
from chargerfw.store.database import Database
from chargerfw.store.faults import FaultHistory
from chargerfw.store.firmware import FirmwareUpdates
from chargerfw.store.frames import FRAME_LOG_SIZE, FrameLog
from chargerfw.store.outbox import Outbox
from chargerfw.store.security_log import SecurityLog
from chargerfw.store.settings import Availability, ConfigKeyValues, Reservations
from chargerfw.store.transactions import Transactions


class Store:
    """The station's SQLite store. Thread-safe (one connection behind a lock); calls are short
    and synchronous: a FULL commit costs one fsync of the WAL."""

    def __init__(self, path: str | Path, frame_log_size: int = FRAME_LOG_SIZE) -> None:
        db = self._db = Database(path)
        self.path = db.path

        config_keys = ConfigKeyValues(db)
        self.config_get = config_keys.get
        self.config_all = config_keys.all
        self.config_set = config_keys.set

        availability = Availability(db)
        self.availability_set = availability.set
        self.availability_all = availability.all

        reservations = Reservations(db)
        self.reservations_replace = reservations.replace
        self.reservations_all = reservations.all

        # The station core's AuthStore protocol.
        cache = AuthorizationCache(db)
        self.cache_get = cache.get
        self.cache_put = cache.put
        self.cache_clear = cache.clear
        local_list = LocalList(db)
        self.local_list_get = local_list.get
        self.local_list_version = local_list.version
        self.local_list_size = local_list.size
        self.local_list_apply = local_list.apply

        transactions = Transactions(db)
        self.start_transaction = transactions.start
        self.record_meter = transactions.record_meter
        self.add_transaction_data = transactions.add_data
        self.transaction_data = transactions.data
        self.enqueue_meter_values = transactions.enqueue_meter_values
        self.stop_transaction = transactions.stop
        self.recover_interrupted = transactions.recover_interrupted
        self.set_backend_transaction_id = transactions.set_backend_id
        self.transaction = transactions.get
        self.transaction_by_backend_id = transactions.by_backend_id
        self.open_transactions = transactions.open
        self.transactions = transactions.recent
        self.highest_energy_wh_by_connector = transactions.highest_energy_wh_by_connector

        outbox = Outbox(db)
        self.outbox_head = outbox.head
        self.outbox_pending = outbox.pending
        self.outbox_stop_pending = outbox.stop_pending
        self.outbox_all = outbox.all
        self.outbox_note_send = outbox.note_send
        self.outbox_delivered = outbox.delivered
        self.outbox_failed = outbox.failed
        self.outbox_defer = outbox.defer
        self.outbox_prune = outbox.prune
        self.outbox_notify = outbox.notify

        faults = FaultHistory(db)
        self.fault_raise = faults.record
        self.fault_clear = faults.clear
        self.faults = faults.entries

        profiles = ChargingProfiles(db)
        self.charging_profiles = profiles.all
        self.charging_profiles_replace = profiles.replace

        firmware = FirmwareUpdates(db)
        self.firmware_state = firmware.state
        self.firmware_save = firmware.save
        security_log = SecurityLog(db)
        self.security_event_add = security_log.add
        self.security_events = security_log.entries
        self.security_log_clear = security_log.clear

        frames = self._frames = FrameLog(db, frame_log_size)
        self.frame_log_add = frames.add
        self.frame_log = frames.recent

    @property
    def frame_log_size(self) -> int:
        return self._frames.size

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    def backup(self, target: str | Path) -> None:
        """A consistent copy of the store at ``target`` (kept before a firmware switch)."""
        self._db.backup(target)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
