"""Many hostile frames over a real socket: every CALL answered, nothing else answered, the link
never dropped, and the station's resident memory does not grow with the number of frames (the
bench script runs the station as its own process and reads its /proc status)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ocpp_hostile_frames.py"
ALLOWED_GROWTH_KIB = 3 * 1024  # allocator noise; a per-frame leak of 500 bytes would be 3 MiB


def test_hostile_frames_are_all_answered_without_memory_growth():
    done = subprocess.run([sys.executable, str(BENCH), "--frames", "8000", "--warmup", "2000",
                           "--json"], capture_output=True, text=True, timeout=200, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["frames"] == 8000 and figures["calls"] > 3000
    assert figures["station_alive"] and figures["connections"] == 1, figures["station_stderr"]
    assert figures["unanswered"] == 0 and figures["unexpected"] == 0
    assert figures["rss_after_kib"] - figures["rss_after_warmup_kib"] < ALLOWED_GROWTH_KIB
