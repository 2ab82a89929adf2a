"""Plausibility rules (pure functions, table-tested) and the fault transitions they drive."""

from __future__ import annotations

import dataclasses

import pytest

from chargerfw.drivers.meter.plausibility import (
    FaultLatch,
    PlausibilityLimits,
    SampleMonitor,
    energy_problem,
    frequency_problem,
    frozen_problem,
    sample_problem,
    voltage_problem,
)
from chargerfw.drivers.types import MeterFault, MeterFaultKind, MeterSample

LIMITS = PlausibilityLimits(frozen_samples=3)
K = MeterFaultKind


def sample(**kw) -> MeterSample:
    base = dict(timestamp=0.0, energy_import_wh=1000.0, energy_export_wh=0.0, power_w=3000.0,
                voltage_l1_v=230.0, voltage_l2_v=230.0, voltage_l3_v=230.0, frequency_hz=50.0)
    base.update(kw)
    return MeterSample(**base)


@pytest.mark.parametrize(("volts", "bad"), [
    ((230.0, 230.0, 230.0), False),
    ((184.0, 264.5, 230.0), False),  # edges are in range
    ((183.9, 230.0, 230.0), True),
    ((230.0, 264.6, 230.0), True),
    ((230.0, 0.0, 0.0), False),  # 1-phase install: L2/L3 absent
    ((230.0, 49.9, None), False),
    ((230.0, 50.0, 230.0), True),  # 50 V counts as present, and is far too low
    ((400.0, 230.0, 230.0), True),  # phase-to-phase by mistake
])
def test_voltage_rule(volts, bad):
    problem = voltage_problem(sample(voltage_l1_v=volts[0], voltage_l2_v=volts[1],
                                     voltage_l3_v=volts[2]), LIMITS)
    assert (problem is not None) is bad
    if bad:
        assert "outside 184..264.5 V" in problem


@pytest.mark.parametrize(("hz", "bad"), [
    (50.0, False), (47.5, False), (52.5, False), (47.4, True), (52.6, True), (60.0, True),
    (None, False), (0.0, True),
])
def test_frequency_rule(hz, bad):
    assert (frequency_problem(sample(frequency_hz=hz), LIMITS) is not None) is bad


@pytest.mark.parametrize(("before", "after", "bad"), [
    ((1000.0, 0.0), (1000.0, 0.0), False),
    ((1000.0, 0.0), (1000.5, 0.0), False),
    ((1000.0, 0.0), (999.9, 0.0), True),
    ((1000.0, 5.0), (1001.0, 4.0), True),  # export counter going back is as bad
    ((1000.0, None), (1001.0, None), False),
])
def test_energy_rule(before, after, bad):
    prev = sample(energy_import_wh=before[0], energy_export_wh=before[1])
    now = sample(energy_import_wh=after[0], energy_export_wh=after[1])
    assert (energy_problem(prev, now, LIMITS) is not None) is bad
    assert energy_problem(None, now, LIMITS) is None


def test_energy_tolerance_allows_float_noise():
    limits = dataclasses.replace(LIMITS, energy_tolerance_wh=1.0)
    prev, now = sample(energy_import_wh=1000.0), sample(energy_import_wh=999.5)
    assert energy_problem(prev, now, limits) is None


@pytest.mark.parametrize(("history", "bad"), [
    ([sample()] * 3, True),
    ([sample()] * 2, False),  # not enough samples yet
    ([sample(), sample(), sample(energy_import_wh=1000.1)], False),
    ([sample(power_w=50.0)] * 3, False),  # idle meter: identical values are normal
    ([sample(power_w=-3000.0)] * 3, True),  # export flows too
    ([sample(timestamp=t) for t in (1.0, 2.0, 3.0)], True),  # timestamps do not count
    ([sample(power_w=None, power_l1_w=200.0)] * 3, True),
])
def test_frozen_rule(history, bad):
    assert (frozen_problem(history, LIMITS) is not None) is bad


def test_sample_with_non_finite_field_is_bad():
    assert sample_problem(sample()) is None
    assert "power_w is nan" in sample_problem(sample(power_w=float("nan")))


def test_latch_reports_each_transition_once():
    latch = FaultLatch()
    first = latch.set(K.TIMEOUT, "no reply", 1.0)
    assert first == MeterFault(K.TIMEOUT, True, "no reply", 1.0)
    assert latch.set(K.TIMEOUT, "no reply again", 2.0) is None
    recovered = latch.set(K.TIMEOUT, None, 3.0)
    assert recovered.active is False and "no reply" in recovered.detail
    assert latch.set(K.TIMEOUT, None, 4.0) is None


def kinds(items):
    return [(i.kind, i.active) if isinstance(i, MeterFault) else "sample" for i in items]


def test_monitor_communication_fault_and_recovery():
    monitor = SampleMonitor(LIMITS, stale_after_s=10.0, now=0.0)
    assert kinds(monitor.on_sample(sample(energy_import_wh=1.0), 1.0)) == ["sample"]
    assert kinds(monitor.on_failure(K.TIMEOUT, "x", 2.0)) == [(K.TIMEOUT, True)]
    assert monitor.on_failure(K.TIMEOUT, "x", 3.0) == []
    assert kinds(monitor.on_failure(K.CRC_ERROR, "y", 4.0)) == [(K.CRC_ERROR, True)]
    out = monitor.on_sample(sample(energy_import_wh=2.0), 5.0)
    assert kinds(out) == [(K.CRC_ERROR, False), (K.TIMEOUT, False), "sample"]
    assert monitor.active_faults == {}


def test_monitor_withholds_backwards_and_frozen_samples():
    monitor = SampleMonitor(LIMITS, stale_after_s=100.0, now=0.0)
    assert kinds(monitor.on_sample(sample(energy_import_wh=10.0), 1.0)) == ["sample"]
    assert kinds(monitor.on_sample(sample(energy_import_wh=5.0), 2.0)) == [
        (K.ENERGY_BACKWARDS, True)]
    # Still below the last accepted reading: still withheld, nothing new reported.
    assert monitor.on_sample(sample(energy_import_wh=6.0), 3.0) == []
    assert kinds(monitor.on_sample(sample(energy_import_wh=11.0), 4.0)) == [
        (K.ENERGY_BACKWARDS, False), "sample"]
    for t in (5.0, 6.0):
        assert kinds(monitor.on_sample(sample(energy_import_wh=12.0), t)) == ["sample"]
    assert kinds(monitor.on_sample(sample(energy_import_wh=12.0), 7.0)) == [(K.FROZEN, True)]
    assert monitor.on_sample(sample(energy_import_wh=12.0), 8.0) == []
    assert kinds(monitor.on_sample(sample(energy_import_wh=13.0), 9.0)) == [
        (K.FROZEN, False), "sample"]


def test_monitor_passes_out_of_range_samples_with_their_fault():
    monitor = SampleMonitor(LIMITS, stale_after_s=100.0, now=0.0)
    out = monitor.on_sample(sample(voltage_l1_v=150.0, frequency_hz=55.0), 1.0)
    assert kinds(out) == [(K.VOLTAGE_OUT_OF_RANGE, True), (K.FREQUENCY_OUT_OF_RANGE, True),
                          "sample"]
    out = monitor.on_sample(sample(energy_import_wh=1001.0), 2.0)
    assert kinds(out) == [(K.VOLTAGE_OUT_OF_RANGE, False), (K.FREQUENCY_OUT_OF_RANGE, False),
                          "sample"]


def test_monitor_stale_after_no_fresh_sample():
    monitor = SampleMonitor(LIMITS, stale_after_s=3.0, now=0.0)
    assert monitor.check_stale(3.0) == []
    stale = monitor.check_stale(3.5)
    assert kinds(stale) == [(K.STALE, True)] and "limit 3 s" in stale[0].detail
    assert monitor.check_stale(10.0) == []
    assert kinds(monitor.on_sample(sample(), 11.0)) == [(K.STALE, False), "sample"]
    assert monitor.check_stale(13.0) == []
