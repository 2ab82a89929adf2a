"""`chargerfw security-log show` (the text GetLog(SecurityLog) uploads) and `security-log clear`
(the log then holds only SecurityLogWasCleared, queued for the backend)."""

from __future__ import annotations

import pytest
from diag_support import as_json, invoke

pytestmark = pytest.mark.timeout(30)


def test_show_and_clear(station, store):
    store.security_event_add("StartupOfTheDevice", "chargerfw 1.0", at=1_700_000_000)
    store.security_event_add("InvalidMessages", "FormationViolation: x", at=1_700_000_060)
    shown = invoke("security-log", "show", "-c", station)
    assert shown.exit_code == 0
    assert shown.stdout == ("2023-11-14T22:13:20Z StartupOfTheDevice chargerfw 1.0\n"
                            "2023-11-14T22:14:20Z InvalidMessages FormationViolation: x\n")
    assert [e["type"] for e in as_json(invoke("security-log", "show", "-c", station, "--json"))
            ] == ["StartupOfTheDevice", "InvalidMessages"]

    refused = invoke("security-log", "clear", "-c", station, input="n\n")
    assert refused.exit_code == 1 and len(store.security_events()) == 2  # not confirmed

    cleared = invoke("security-log", "clear", "-c", station, "--yes", "--json")
    assert cleared.exit_code == 0, cleared.output
    assert as_json(cleared) == {"cleared": 2}
    assert [(e.type, e.tech_info) for e in store.security_events()] == [
        ("SecurityLogWasCleared", "2 entries cleared by a technician")]
    [queued] = store.outbox_pending()
    assert (queued.action, queued.payload["type"]) == (
        "SecurityEventNotification", "SecurityLogWasCleared")
