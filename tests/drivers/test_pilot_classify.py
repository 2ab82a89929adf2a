"""Pilot duty <-> current (IEC 61851-1) and state classification, table-tested at the edges."""

from __future__ import annotations

import math

import pytest

from chargerfw.drivers.pilot import (
    PilotClassifier,
    PilotCurrentError,
    classify_pilot,
    current_for_duty,
    duty_for_current,
)
from chargerfw.drivers.types import PilotState as S


@pytest.mark.parametrize(
    ("amps", "duty"),
    [
        (6, 10.0),
        (10, 16.6667),
        (16, 26.6667),
        (32, 53.3333),
        (51, 85.0),
        (51.5, 84.6),  # the 51-80 A formula starts just above 51 A
        (63, 89.2),
        (80, 96.0),
    ],
)
def test_duty_for_current(amps, duty):
    assert duty_for_current(amps) == pytest.approx(duty, abs=1e-4)


@pytest.mark.parametrize("amps", [5.99, 0, -1, 80.01, math.nan])
def test_duty_for_current_refuses_what_the_pilot_cannot_signal(amps):
    with pytest.raises(PilotCurrentError):
        duty_for_current(amps)


@pytest.mark.parametrize(
    ("duty", "amps"),
    [
        (0.0, None),  # -12 V / state F
        (2.9, None),
        (5.0, None),  # digital communication
        (7.9, None),
        (8.0, 6.0),
        (9.9, 6.0),
        (10.0, 6.0),
        (26.6667, 16.0),
        (85.0, 51.0),
        (90.0, 65.0),
        (96.0, 80.0),
        (97.0, 80.0),
        (97.1, None),
        (100.0, None),  # +12 V steady: no PWM
    ],
)
def test_current_for_duty(duty, amps):
    got = current_for_duty(duty)
    if amps is None:
        assert got is None
    else:
        assert got == pytest.approx(amps, abs=1e-3)


@pytest.mark.parametrize("amps", [6, 13, 16, 20, 32, 40, 51, 60, 70, 80])
def test_current_round_trips_through_duty(amps):
    assert current_for_duty(duty_for_current(amps)) == pytest.approx(amps)


@pytest.mark.parametrize("duty", [-0.1, 100.1, math.nan])
def test_current_for_duty_rejects_impossible_duty(duty):
    with pytest.raises(ValueError):
        current_for_duty(duty)


# high_v, low_v, pwm_active, previous, expected (margin 0.5 V)
CASES = [
    # plain bands, no history
    (12.0, 12.0, False, None, S.A),
    (10.5, 10.5, False, None, S.A),
    (10.49, 10.49, False, None, S.B),
    (9.0, -12.0, True, None, S.B),
    (7.5, -12.0, True, None, S.B),
    (7.49, -12.0, True, None, S.C),
    (6.0, -12.0, True, None, S.C),
    (4.5, -12.0, True, None, S.C),
    (4.49, -12.0, True, None, S.D),
    (1.5, -12.0, True, None, S.D),
    (1.49, 1.49, True, None, S.E),
    (0.0, 0.0, True, None, S.E),
    (-10.5, -10.5, False, None, S.E),
    (-10.51, -10.51, False, None, S.F),
    (-12.0, -12.0, False, None, S.F),
    # hysteresis: the previous state holds within its band +- 0.5 V
    (10.99, -12.0, True, S.B, S.B),
    (11.0, -12.0, True, S.B, S.A),
    (7.0, -12.0, True, S.B, S.B),
    (6.99, -12.0, True, S.B, S.C),
    (10.0, -12.0, True, S.A, S.A),
    (9.99, -12.0, True, S.A, S.B),
    (7.99, -12.0, True, S.C, S.C),
    (8.0, -12.0, True, S.C, S.B),
    (1.99, 1.99, True, S.E, S.E),
    (2.0, -12.0, True, S.E, S.D),
    # diode check: only while PWM runs and a vehicle is connected
    (9.0, -9.0, True, None, S.DIODE_FAULT),
    (6.0, -9.99, True, S.C, S.DIODE_FAULT),
    (6.0, -10.0, True, S.C, S.C),
    (9.0, -9.0, False, None, S.B),  # steady +12 V: no low plateau to check
    (12.0, -3.0, True, None, S.A),  # no vehicle: no diode to check
    # leaving DIODE_FAULT needs the low plateau back below -11 V
    (6.0, -10.9, True, S.DIODE_FAULT, S.DIODE_FAULT),
    (6.0, -11.0, True, S.DIODE_FAULT, S.C),
]


@pytest.mark.parametrize(("high", "low", "pwm", "previous", "expected"), CASES)
def test_classify_pilot(high, low, pwm, previous, expected):
    assert classify_pilot(high, low, pwm, previous, margin_v=0.5) is expected


def test_classify_without_margin_uses_plain_bands():
    assert classify_pilot(10.6, -12.0, True, S.B, margin_v=0.0) is S.A


def test_classify_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        classify_pilot(math.nan, -12.0, True)


def test_classifier_needs_consistent_reads_to_change():
    classifier = PilotClassifier(margin_v=0.5, confirm_reads=3)
    assert classifier.update(12.0, -12.0, True) is S.A  # first read taken at once
    assert classifier.update(9.0, -12.0, True) is S.A
    assert classifier.update(9.0, -12.0, True) is S.A
    assert classifier.update(6.0, -12.0, True) is S.A  # a different candidate restarts the count
    assert classifier.update(9.0, -12.0, True) is S.A
    assert classifier.update(9.0, -12.0, True) is S.A
    assert classifier.update(9.0, -12.0, True) is S.B
    assert classifier.state is S.B


def test_classifier_single_read_mode():
    classifier = PilotClassifier(confirm_reads=1)
    classifier.update(12.0, -12.0, True)
    assert classifier.update(6.0, -12.0, True) is S.C
    with pytest.raises(ValueError):
        PilotClassifier(confirm_reads=0)


@pytest.mark.parametrize("leaving_to", [(9.0, S.B), (12.0, S.A), (0.0, S.E)])
@pytest.mark.parametrize("charging_v", [6.0, 3.0])
def test_leaving_c_or_d_is_taken_at_the_first_read(charging_v, leaving_to):
    volts, state = leaving_to
    classifier = PilotClassifier(margin_v=0.5, confirm_reads=3)
    classifier.update(9.0, -12.0, True)
    for _ in range(3):
        entered = classifier.update(charging_v, -12.0, True)
    assert entered in (S.C, S.D)  # entering was confirmed over three reads
    assert classifier.update(volts, -12.0, True) is state  # leaving is not


def test_entering_c_still_needs_its_confirmation():
    classifier = PilotClassifier(margin_v=0.5, confirm_reads=2)
    classifier.update(9.0, -12.0, True)
    assert classifier.update(6.0, -12.0, True) is S.B
    assert classifier.update(6.0, -12.0, True) is S.C
