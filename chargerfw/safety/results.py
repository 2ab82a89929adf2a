"""What the guarded hardware tests report: the control API's replies for ``test.*`` and the safety
protocol's results, kept apart from the sequences so a status call does not load the drivers."""

from __future__ import annotations

import enum

import msgspec

from chargerfw.drivers.types import ContactorFeedback, LockResult, PilotMode, PilotState
from chargerfw.station.faults import FaultKind


class TestResult(msgspec.Struct, frozen=True):
    """What a hardware test reports (the control API's replies for ``test.*``)."""


class ContactorVerdict(enum.StrEnum):
    OK = "ok"
    WELDED = "welded"
    FAILED_TO_CLOSE = "failed_to_close"


class ContactorStep(TestResult, frozen=True):
    step: str  # before, close, open
    commanded: str  # open, closed
    feedback: ContactorFeedback


class ContactorTestReply(TestResult, frozen=True, omit_defaults=True):
    passed: bool
    result: ContactorVerdict
    steps: list[ContactorStep]
    connector: int
    faults_raised: list[FaultKind] | None = None  # what the service raised meanwhile
    interrupted_by: str | None = None  # what ended the test early ("fault ...", "pilot B")


class RcdTestReply(TestResult, frozen=True, omit_defaults=True):
    passed: bool
    tripped: bool
    cleared: bool
    trip_time_s: float | None
    faults_raised: list[FaultKind] | None = None


class PilotStep(TestResult, frozen=True):
    output: PilotMode
    current_a: float | None
    duty_percent: float
    state: PilotState
    high_v: float
    low_v: float
    expected: list[PilotState]
    ok: bool


class PilotTestReply(TestResult, frozen=True, omit_defaults=True):
    passed: bool
    vehicle: bool
    steps: list[PilotStep]
    connector: int
    faults_raised: list[FaultKind] | None = None


class LockStep(TestResult, frozen=True):
    command: str  # lock, unlock
    result: LockResult


class LockTestReply(TestResult, frozen=True, omit_defaults=True):
    passed: bool
    feedback: bool  # the lock has a feedback switch
    steps: list[LockStep]
    connector: int
    faults_raised: list[FaultKind] | None = None


HardwareTestReply = ContactorTestReply | RcdTestReply | PilotTestReply | LockTestReply
