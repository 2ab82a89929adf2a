"""`chargerfw ocpp log` and `chargerfw queue`, read from the store (service not running)."""

from __future__ import annotations

import json
import time

import pytest
from diag_support import as_json, invoke

pytestmark = pytest.mark.timeout(30)


def test_ocpp_log_is_redacted(station, store):
    store.frame_log_add("out", '[2,"1","BootNotification",{"chargePointVendor":"x"}]', at=1.0)
    # A frame stored unredacted (older firmware) is redacted on the way out.
    store.frame_log_add("in", '[2,"7","ChangeConfiguration",{"key":"AuthorizationKey",'
                              '"value":"0123456789abcdef0123"}]', at=2.0)
    rows = as_json(invoke("ocpp", "log", "-c", station, "--json"))
    assert [r["direction"] for r in rows] == ["out", "in"]
    assert "0123456789abcdef" not in json.dumps(rows)
    assert json.loads(rows[1]["frame"])[3] == {"key": "AuthorizationKey", "value": "***"}
    human = invoke("ocpp", "log", "-c", station, "--direction", "in")
    assert human.exit_code == 0
    assert "<- " in human.stdout and "BootNotification" not in human.stdout


def test_queue_shows_pending_and_dead(station, store):
    tx = store.start_transaction(1, "04A1B2C3", 1000, time.time())
    store.stop_transaction(tx.local_id, 2000, time.time(), "Local")
    start = store.outbox_head()
    store.outbox_failed(start.seq, "FormationViolation", max_attempts=1, retry_interval_s=1)
    rows = as_json(invoke("queue", "-c", station, "--json"))
    assert [(r["action"], r["state"]) for r in rows] == [
        ("StartTransaction", "dead"), ("StopTransaction", "dead")]
    human = invoke("queue", "-c", station)
    assert "0 pending, 2 dead" in human.stdout and "FormationViolation" in human.stdout
    # A notification belongs to no transaction: its payload is shown instead.
    store.outbox_notify("DiagnosticsStatusNotification", {"status": "Uploading"})
    human = invoke("queue", "-c", station)
    assert "1 pending, 2 dead" in human.stdout
    assert 'DiagnosticsStatusNotification pending   {"status":"Uploading"}' in human.stdout


def test_store_commands_without_a_store(station):
    for args in (["faults"], ["ocpp", "log"], ["queue"]):
        result = invoke(*args, "-c", station)
        assert result.exit_code == 3 and "no store" in result.stderr
