"""Over-current detection and sample freshness."""

from __future__ import annotations

import pytest

from chargerfw.drivers.types import MeterSample
from chargerfw.station.metering import OverCurrentDetector, OverCurrentSettings, fresh_current_a


@pytest.mark.parametrize(
    ("offered", "threshold"),
    [(6.0, 7.0), (10.0, 11.0), (16.0, 17.6), (32.0, 35.2)],  # +10 %, at least +1 A
)
def test_threshold(offered, threshold):
    assert OverCurrentSettings().threshold_a(offered) == pytest.approx(threshold)


def test_fresh_current():
    sample = MeterSample(timestamp=100.0, energy_import_wh=0, current_l1_a=5, current_l3_a=7)
    assert fresh_current_a(sample, 104.0, 5.0) == 7
    assert fresh_current_a(sample, 106.0, 5.0) is None  # stale
    assert fresh_current_a(None, 100.0, 5.0) is None
    assert fresh_current_a(MeterSample(timestamp=100.0, energy_import_wh=0), 100.0, 5.0) is None
    nan = MeterSample(timestamp=100.0, energy_import_wh=0, current_l1_a=float("nan"))
    assert fresh_current_a(nan, 100.0, 5.0) is None


def test_detector_timeline():
    d = OverCurrentDetector(OverCurrentSettings(persist_s=5.0, follow_time_s=5.0))
    assert d.update(50.0, 0.0) is False  # nothing offered: not judged
    d.set_offered(16.0, 0.0)
    assert d.update(20.0, 1.0) is False
    assert d.update(None, 3.0) is False  # no fresh sample: timer kept
    assert d.update(20.0, 5.9) is False
    assert d.update(20.0, 6.0) is True
    d.set_offered(32.0, 7.0)  # raised: judged against 32 at once
    assert d.update(20.0, 7.0) is False
    d.set_offered(10.0, 10.0)  # lowered: 32 still allowed until 15.0
    assert d.allowed_limit_a(14.9) == 32.0
    assert d.allowed_limit_a(15.0) == 10.0
    assert d.update(30.0, 14.0) is False
    assert d.update(30.0, 15.0) is False  # the 5 s of excess start now
    assert d.update(30.0, 20.0) is True
    d.not_powered()  # the contactor opened: the running excess is forgotten
    assert d.update(30.0, 21.0) is False
    assert d.update(30.0, 25.9) is False
    assert d.update(30.0, 26.0) is True


def test_an_offer_lowered_as_the_contactor_closes_still_gives_the_time_to_follow():
    # The vehicle read 32 A on the PWM in state B; 8 A comes just as power starts to flow.
    d = OverCurrentDetector(OverCurrentSettings(persist_s=0.5, follow_time_s=5.0))
    d.set_offered(32.0, 0.0)
    d.not_powered()
    d.set_offered(8.0, 0.1)
    assert d.update(32.0, 0.2) is False
    assert d.update(32.0, 5.0) is False  # judged against 32 until 5.1
    assert d.update(32.0, 5.1) is False  # the excess starts now
    assert d.update(32.0, 5.6) is True


def test_two_quick_reductions_keep_the_highest_limit():
    d = OverCurrentDetector()
    d.set_offered(32.0, 0.0)
    d.set_offered(16.0, 1.0)
    d.set_offered(8.0, 2.0)
    assert d.allowed_limit_a(3.0) == 32.0
    assert d.allowed_limit_a(7.0) == 8.0
