"""The store's schema, as the list of migrations that build it (``PRAGMA user_version`` counts
how many ran). A new table or column is one more entry at the end; nothing here is ever edited."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE config_keys (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY,
        info TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE local_list (
        id_tag TEXT PRIMARY KEY,
        info TEXT NOT NULL
    );
    CREATE TABLE local_list_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO local_list_meta (id, version) VALUES (1, 0);
    CREATE TABLE transactions (
        local_id INTEGER PRIMARY KEY AUTOINCREMENT,
        connector_id INTEGER NOT NULL CHECK (connector_id >= 1),
        id_tag TEXT NOT NULL CHECK (length(id_tag) BETWEEN 1 AND 20),
        meter_start_wh INTEGER NOT NULL CHECK (meter_start_wh >= 0),
        started_at REAL NOT NULL,
        reservation_id INTEGER,
        backend_tx_id INTEGER,
        start_status TEXT,
        state TEXT NOT NULL CHECK (state IN ('open', 'stopped')),
        meter_stop_wh INTEGER,
        stopped_at REAL,
        stop_reason TEXT,
        stop_id_tag TEXT,
        last_meter_wh INTEGER,
        last_meter_at REAL
    );
    CREATE INDEX transactions_open ON transactions (state, connector_id);
    CREATE TABLE transaction_data (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        local_id INTEGER NOT NULL REFERENCES transactions (local_id),
        meter_value TEXT NOT NULL
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        local_tx_id INTEGER NOT NULL REFERENCES transactions (local_id),
        action TEXT NOT NULL CHECK (action IN ('StartTransaction', 'MeterValues', 'StopTransaction')),
        payload TEXT NOT NULL,
        unique_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        sends INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered_at REAL
    );
    CREATE INDEX outbox_pending ON outbox (state, seq);
    CREATE TABLE faults (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        code TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        needs_technician INTEGER NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        raised_at REAL NOT NULL,
        cleared_at REAL
    );
    CREATE INDEX faults_active ON faults (cleared_at, connector_id, code);
    CREATE TABLE frame_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        frame TEXT NOT NULL
    );
    """,
    # 2: ChangeAvailability survives a restart (OCPP 1.6 section 5.2). connector_id 0 = station.
    """
    CREATE TABLE availability (
        connector_id INTEGER PRIMARY KEY CHECK (connector_id >= 0),
        operative INTEGER NOT NULL CHECK (operative IN (0, 1))
    );
    """,
    # 3: OCPP charging profiles (Smart Charging) survive a restart and a power cut. The
    # profile is its csChargingProfiles object as JSON; connector_id 0 = the charge point.
    """
    CREATE TABLE charging_profiles (
        profile_id INTEGER PRIMARY KEY,
        connector_id INTEGER NOT NULL CHECK (connector_id >= 0),
        awaiting_start INTEGER NOT NULL CHECK (awaiting_start IN (0, 1)),
        profile TEXT NOT NULL,
        installed_at REAL NOT NULL
    );
    """,
    # 4: reservations survive a restart. connector_id 0 = any connector.
    """
    CREATE TABLE reservations (
        reservation_id INTEGER PRIMARY KEY,
        connector_id INTEGER NOT NULL CHECK (connector_id >= 0),
        id_tag TEXT NOT NULL CHECK (length(id_tag) BETWEEN 1 AND 20),
        parent_id_tag TEXT CHECK (parent_id_tag IS NULL OR length(parent_id_tag) BETWEEN 1 AND 20),
        expires_at REAL
    );
    """,
    # 5: the outbox also carries the station's status notifications that must not be lost
    # (diagnostics, log, firmware and security): they belong to no transaction, so
    # local_tx_id is NULL for them and only for them. SQLite cannot change a CHECK in place:
    # the table is rebuilt with its rows and numbering. The security log: the events the
    # station records for GetLog(SecurityLog) and SecurityEventNotification. The firmware
    # update's state survives a restart.
    """
    CREATE TABLE outbox_v5 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        local_tx_id INTEGER REFERENCES transactions (local_id),
        action TEXT NOT NULL CHECK (action IN (
            'StartTransaction', 'MeterValues', 'StopTransaction',
            'DiagnosticsStatusNotification', 'FirmwareStatusNotification',
            'LogStatusNotification', 'SignedFirmwareStatusNotification',
            'SecurityEventNotification')),
        payload TEXT NOT NULL,
        unique_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        sends INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered_at REAL,
        CHECK ((local_tx_id IS NULL) =
               (action NOT IN ('StartTransaction', 'MeterValues', 'StopTransaction')))
    );
    INSERT INTO outbox_v5 (seq, local_tx_id, action, payload, unique_id, state, created_at,
                           attempts, sends, next_attempt_at, last_error, delivered_at)
        SELECT seq, local_tx_id, action, payload, unique_id, state, created_at,
               attempts, sends, next_attempt_at, last_error, delivered_at FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v5 RENAME TO outbox;
    CREATE INDEX outbox_pending ON outbox (state, seq);
    CREATE TABLE security_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        type TEXT NOT NULL CHECK (length(type) BETWEEN 1 AND 50),
        tech_info TEXT CHECK (tech_info IS NULL OR length(tech_info) <= 255)
    );
    CREATE INDEX security_log_at ON security_log (at);
    CREATE TABLE firmware_update (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        state TEXT NOT NULL
    );
    """,
]
