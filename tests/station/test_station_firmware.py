"""The firmware update machine, table-tested: every step's state and actions."""

from __future__ import annotations

import dataclasses

import pytest

from chargerfw.drivers.types import PilotState
from chargerfw.station import connector as cn
from chargerfw.station.enums import ChargePointStatus, StopReason
from chargerfw.station.firmware import (
    Answer,
    CancelDownload,
    DownloadAttemptFailed,
    DownloadFinished,
    FirmwareRequest,
    FirmwareState,
    FirmwareStatus,
    HoldConnectors,
    InstallFinished,
    Log,
    Notify,
    Phase,
    Rebooting,
    ReleaseRefused,
    Resumed,
    SignatureRefused,
    StartDownload,
    StartInstall,
    Tick,
    UpdateAnswer,
    UpdateRequested,
    core_status,
    step,
)

S = FirmwareStatus
REQUEST = FirmwareRequest("http://backend/fw.tar", retrieve_at=100.0, tries=2,
                          retry_interval_s=30)
SCHEDULED = FirmwareState(Phase.SCHEDULED, REQUEST)
DOWNLOADING = FirmwareState(Phase.DOWNLOADING, REQUEST, attempts=1, status=S.DOWNLOADING)
WAITING = FirmwareState(Phase.WAITING_FOR_TRANSACTIONS, REQUEST, attempts=1,
                        archive="/d/fw.tar", version="2.0", status=S.DOWNLOADED)
INSTALLING = dataclasses.replace(WAITING, phase=Phase.INSTALLING, status=S.INSTALLING)
IDLE = FirmwareState()


def statuses(actions: list[object]) -> list[FirmwareStatus]:
    return [a.status for a in actions if isinstance(a, Notify)]


@pytest.mark.parametrize(("state", "event", "phase", "actions"), [
    # Scheduled: nothing before the retrieve time, then the first try.
    (SCHEDULED, Tick(99.0, False), Phase.SCHEDULED, []),
    (SCHEDULED, Tick(100.0, True), Phase.DOWNLOADING,
     [StartDownload(REQUEST, 1), Notify(S.DOWNLOADING)]),
    # A try fails: wait retryInterval; the next try reports nothing new (still Downloading).
    (DOWNLOADING, DownloadAttemptFailed("HTTP 404", 200.0), Phase.RETRY_WAIT,
     [Log("firmware.download_failed", "try 1 of 2: HTTP 404")]),
    (dataclasses.replace(DOWNLOADING, phase=Phase.RETRY_WAIT, next_attempt_at=230.0),
     Tick(229.0, False), Phase.RETRY_WAIT, []),
    (dataclasses.replace(DOWNLOADING, phase=Phase.RETRY_WAIT, next_attempt_at=230.0),
     Tick(230.0, False), Phase.DOWNLOADING, [StartDownload(REQUEST, 2)]),
    # The last try fails: DownloadFailed; Idle is not sent (only a trigger reports it).
    (dataclasses.replace(DOWNLOADING, attempts=2), DownloadAttemptFailed("reset", 300.0),
     Phase.IDLE, [Log("firmware.download_failed", "try 2 of 2: reset"),
                  Notify(S.DOWNLOAD_FAILED)]),
    # Downloaded and verified: hold the connectors, wait for transactions to end.
    (DOWNLOADING, DownloadFinished("/d/fw.tar", "2.0"), Phase.WAITING_FOR_TRANSACTIONS,
     [HoldConnectors(True), Notify(S.DOWNLOADED)]),
    (WAITING, Tick(500.0, True), Phase.WAITING_FOR_TRANSACTIONS, []),
    (WAITING, Tick(500.0, False), Phase.INSTALLING,
     [StartInstall("/d/fw.tar", "2.0"), Notify(S.INSTALLING)]),
    # A refused release: Downloaded, InstallationFailed; nothing installed.
    (DOWNLOADING, ReleaseRefused("bad signature"), Phase.IDLE,
     [Log("firmware.release_refused", "bad signature"), Notify(S.DOWNLOADED),
      Notify(S.INSTALLATION_FAILED)]),
    # The install's outcome.
    (INSTALLING, InstallFinished(True), Phase.IDLE,
     [HoldConnectors(False), Notify(S.INSTALLED)]),
    (INSTALLING, InstallFinished(False, "self-test failed"), Phase.IDLE,
     [Log("firmware.installation_failed", "self-test failed"), HoldConnectors(False),
      Notify(S.INSTALLATION_FAILED)]),
    # Late or stray outcomes change nothing.
    (IDLE, InstallFinished(True), Phase.IDLE, []),
    (WAITING, DownloadFinished("/d/other.tar", "3.0"), Phase.WAITING_FOR_TRANSACTIONS, []),
    (SCHEDULED, DownloadAttemptFailed("x", 1.0), Phase.SCHEDULED, []),
    (IDLE, Tick(1e9, False), Phase.IDLE, []),
])
def test_step(state, event, phase, actions):
    after, done = step(state, event)
    assert after.phase is phase
    assert done == actions
    if phase is Phase.IDLE and statuses(done):
        assert after == FirmwareState(status=S.IDLE)


def test_the_whole_sequence_reports_every_status_once_in_order():
    state, reported = IDLE, []
    for event in (UpdateRequested(REQUEST), Tick(100.0, False),
                  DownloadAttemptFailed("cut", 101.0), Tick(131.0, False),
                  DownloadFinished("/d/fw.tar", "2.0"), Tick(140.0, True), Tick(150.0, False),
                  InstallFinished(True)):
        state, actions = step(state, event)
        reported += statuses(actions)
    assert reported == [S.DOWNLOADING, S.DOWNLOADED, S.INSTALLING, S.INSTALLED]


NEW = FirmwareRequest("ftp://other/fw.tar", retrieve_at=0.0)


CANCELED = Answer(UpdateAnswer.ACCEPTED_CANCELED)


@pytest.mark.parametrize(("state", "actions"), [
    (IDLE, [Answer(UpdateAnswer.ACCEPTED)]),
    (SCHEDULED, [CANCELED, Log("firmware.update_replaced",
                               "http://backend/fw.tar replaced by ftp://other/fw.tar")]),
    (DOWNLOADING, [CANCELED, Log("firmware.update_replaced",
                                 "http://backend/fw.tar replaced by ftp://other/fw.tar"),
                   CancelDownload()]),
    (WAITING, [CANCELED, Log("firmware.update_replaced",
                             "http://backend/fw.tar replaced by ftp://other/fw.tar"),
               HoldConnectors(False)]),
])
def test_a_second_update_before_installing_replaces_the_first(state, actions):
    after, done = step(state, UpdateRequested(NEW))
    assert done == actions
    assert (after.phase, after.request, after.attempts) == (Phase.SCHEDULED, NEW, 0)
    assert after.status is state.status  # what was last reported stays reported


def test_a_second_update_while_installing_is_ignored():
    after, done = step(INSTALLING, UpdateRequested(NEW))
    assert after == INSTALLING
    assert done == [Answer(UpdateAnswer.REJECTED),
                    Log("firmware.update_ignored", "installing 2.0; ftp://other/fw.tar ignored")]


@pytest.mark.parametrize(("state", "phase", "actions"), [
    # A download cut by a power cut starts again as the same try (it resumes its file).
    (DOWNLOADING, Phase.DOWNLOADING, [StartDownload(REQUEST, 1)]),
    (WAITING, Phase.WAITING_FOR_TRANSACTIONS, [HoldConnectors(True)]),
    # Installing: the runtime finds the outcome and feeds InstallFinished.
    (INSTALLING, Phase.INSTALLING, [HoldConnectors(True)]),
    (SCHEDULED, Phase.SCHEDULED, []),
    (IDLE, Phase.IDLE, []),
])
def test_resumed_after_a_restart(state, phase, actions):
    after, done = step(state, Resumed(1000.0))
    assert (after.phase, done) == (phase, actions)
    assert after.attempts == state.attempts


@pytest.mark.parametrize("state", [IDLE, SCHEDULED, DOWNLOADING, WAITING, INSTALLING,
                                   dataclasses.replace(DOWNLOADING, phase=Phase.RETRY_WAIT,
                                                       next_attempt_at=5.5)])
def test_the_state_round_trips_through_json(state):
    assert FirmwareState.from_json(state.to_json()) == state


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"location": ""}, "location is required"),
    ({"location": "x", "tries": 0}, "tries must be at least 1"),
    ({"location": "x", "retry_interval_s": -1}, "retry interval"),
    ({"location": "x", "request_id": 1, "signature": "c2ln"}, "needs its request id"),
    ({"location": "x", "signature": "c2ln", "signing_certificate": "PEM"},
     "needs its request id"),
    ({"location": "x", "request_id": 1, "signature": " ", "signing_certificate": "PEM"},
     "signature is empty"),
    ({"location": "x", "request_id": 1, "signature": "c2ln", "signing_certificate": ""},
     "signing certificate is empty"),
])
def test_a_bad_request_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FirmwareRequest(retrieve_at=0.0, **kwargs)


# -- the connector's side: a hold takes no new session ---------------------------------------


def test_a_held_free_connector_is_unavailable_and_refuses_a_tag():
    state, _ = cn.step(cn.ConnectorState(1), cn.UpdateHold(True))
    assert cn.outputs(state).status is ChargePointStatus.UNAVAILABLE
    state, actions = cn.step(state, cn.Authorized("TAG"))
    assert state.phase is cn.TxPhase.IDLE
    assert cn.AuthorizationRefused("TAG", cn.RefusalReason.UNAVAILABLE) in actions
    state, _ = cn.step(state, cn.UpdateHold(False))
    assert cn.outputs(state).status is ChargePointStatus.AVAILABLE


def test_a_held_connector_keeps_its_transaction_and_is_unavailable_once_it_ends():
    state = cn.ConnectorState(1)
    for event in (cn.PilotChanged(PilotState.B), cn.Authorized("TAG"),
                  cn.PilotChanged(PilotState.C)):
        state, _ = cn.step(state, event)
    state, _ = cn.step(state, cn.UpdateHold(True))
    assert cn.outputs(state).status is ChargePointStatus.CHARGING
    assert cn.outputs(state).contactor_closed
    state, _ = cn.step(state, cn.StopRequested(StopReason.LOCAL))
    state, _ = cn.step(state, cn.PilotChanged(PilotState.A))
    assert cn.outputs(state).status is ChargePointStatus.UNAVAILABLE


def test_a_hold_withdraws_an_authorization_waiting_for_the_vehicle():
    state, _ = cn.step(cn.ConnectorState(1), cn.Authorized("TAG"))
    assert state.phase is cn.TxPhase.AUTHORIZED
    state, _ = cn.step(state, cn.UpdateHold(True))
    assert (state.phase, state.id_tag) == (cn.TxPhase.IDLE, None)


# -- SignedUpdateFirmware: the same machine, the whitepaper's statuses with the requestId -----

SIGNED = FirmwareRequest("http://backend/fw.tar", retrieve_at=100.0, tries=2,
                         retry_interval_s=30, request_id=7, signature="c2ln",
                         signing_certificate="-----BEGIN CERTIFICATE-----")
SIGNED_LATER = dataclasses.replace(SIGNED, install_at=900.0)


def signed(*names: FirmwareStatus, request_id: int = 7) -> list[Notify]:
    return [Notify(status, request_id) for status in names]


def run(state: FirmwareState, *events: object) -> tuple[FirmwareState, list[object]]:
    done: list[object] = []
    for event in events:
        state, actions = step(state, event)  # type: ignore[arg-type]
        done += actions
    return state, done


S_DOWNLOADING = FirmwareState(Phase.DOWNLOADING, SIGNED, attempts=1, status=S.DOWNLOADING)
S_WAITING = FirmwareState(Phase.WAITING_FOR_TRANSACTIONS, SIGNED, attempts=1,
                          archive="/d/fw.tar", version="2.0", status=S.SIGNATURE_VERIFIED)
S_INSTALLING = dataclasses.replace(S_WAITING, phase=Phase.INSTALLING, status=S.INSTALLING)


@pytest.mark.parametrize(("state", "event", "phase", "actions"), [
    # Taken before its retrieve time: DownloadScheduled; at it: nothing until the tick.
    (IDLE, UpdateRequested(SIGNED, now=50.0), Phase.SCHEDULED,
     [Answer(UpdateAnswer.ACCEPTED), *signed(S.DOWNLOAD_SCHEDULED)]),
    (IDLE, UpdateRequested(SIGNED, now=100.0), Phase.SCHEDULED,
     [Answer(UpdateAnswer.ACCEPTED)]),
    (S_DOWNLOADING, DownloadFinished("/d/fw.tar", "2.0"), Phase.WAITING_FOR_TRANSACTIONS,
     [HoldConnectors(True), *signed(S.DOWNLOADED, S.SIGNATURE_VERIFIED)]),
    (dataclasses.replace(S_DOWNLOADING, request=SIGNED_LATER),
     DownloadFinished("/d/fw.tar", "2.0"), Phase.WAITING_FOR_TRANSACTIONS,
     [HoldConnectors(True),
      *signed(S.DOWNLOADED, S.SIGNATURE_VERIFIED, S.INSTALL_SCHEDULED)]),
    # The signature over the file does not hold: InvalidSignature, nothing installed.
    (S_DOWNLOADING, SignatureRefused("bad"), Phase.IDLE,
     [Log("firmware.signature_refused", "bad"), *signed(S.DOWNLOADED, S.INVALID_SIGNATURE,
                                                        S.IDLE)]),
    # The release itself refused (hash, version) after a valid signature.
    (S_DOWNLOADING, ReleaseRefused("hash"), Phase.IDLE,
     [Log("firmware.release_refused", "hash"),
      *signed(S.DOWNLOADED, S.SIGNATURE_VERIFIED, S.INSTALL_VERIFICATION_FAILED, S.IDLE)]),
    # An install time: not before it, even with no transaction.
    (dataclasses.replace(S_WAITING, request=SIGNED_LATER), Tick(899.0, False),
     Phase.WAITING_FOR_TRANSACTIONS, []),
    (dataclasses.replace(S_WAITING, request=SIGNED_LATER), Tick(900.0, False),
     Phase.INSTALLING, [StartInstall("/d/fw.tar", "2.0"), *signed(S.INSTALLING)]),
    (S_INSTALLING, Rebooting(), Phase.INSTALLING, signed(S.INSTALL_REBOOTING)),
    (dataclasses.replace(S_INSTALLING, status=S.INSTALL_REBOOTING), InstallFinished(True),
     Phase.IDLE, [HoldConnectors(False), *signed(S.INSTALLED, S.IDLE)]),
    (S_INSTALLING, InstallFinished(False, "self-test"), Phase.IDLE,
     [Log("firmware.installation_failed", "self-test"), HoldConnectors(False),
      *signed(S.INSTALLATION_FAILED, S.IDLE)]),
    # A signed request replaces one that has not installed: AcceptedCanceled.
    (DOWNLOADING, UpdateRequested(SIGNED, now=100.0), Phase.SCHEDULED,
     [CANCELED, Log("firmware.update_replaced",
                    "http://backend/fw.tar replaced by http://backend/fw.tar"),
      CancelDownload()]),
    (S_INSTALLING, UpdateRequested(dataclasses.replace(SIGNED, request_id=8), now=100.0),
     Phase.INSTALLING, [Answer(UpdateAnswer.REJECTED),
                        Log("firmware.update_ignored",
                            "installing 2.0; http://backend/fw.tar ignored")]),
    # An unsigned update reports no signed-only status: nothing for Rebooting.
    (INSTALLING, Rebooting(), Phase.INSTALLING, []),
    (IDLE, UpdateRequested(REQUEST, now=50.0), Phase.SCHEDULED, [Answer(UpdateAnswer.ACCEPTED)]),
])
def test_signed_step(state, event, phase, actions):
    after, done = step(state, event)
    assert after.phase is phase
    assert done == actions


def test_a_signed_update_reports_the_whitepaper_sequence_with_its_request_id():
    state, done = run(IDLE, UpdateRequested(SIGNED, now=10.0), Tick(100.0, False),
                      DownloadFinished("/d/fw.tar", "2.0"), Tick(101.0, False), Rebooting(),
                      InstallFinished(True))
    assert [a for a in done if isinstance(a, Notify)] == signed(
        S.DOWNLOAD_SCHEDULED, S.DOWNLOADING, S.DOWNLOADED, S.SIGNATURE_VERIFIED, S.INSTALLING,
        S.INSTALL_REBOOTING, S.INSTALLED, S.IDLE)
    assert state == FirmwareState(status=S.IDLE)


def test_the_signed_request_and_its_status_round_trip_through_json():
    state = dataclasses.replace(S_WAITING, request=SIGNED_LATER)
    assert FirmwareState.from_json(state.to_json()) == state
    assert state.signed_request_id == 7
    assert WAITING.signed_request_id is None


def test_a_state_saved_before_install_times_existed_still_loads():
    saved = WAITING.to_json()
    del saved["request"]["install_at"]
    assert FirmwareState.from_json(saved) == WAITING


@pytest.mark.parametrize(("status", "core"), [
    (S.DOWNLOAD_SCHEDULED, S.IDLE), (S.SIGNATURE_VERIFIED, S.DOWNLOADED),
    (S.INSTALL_SCHEDULED, S.DOWNLOADED), (S.INSTALL_REBOOTING, S.INSTALLING),
    (S.INVALID_SIGNATURE, S.INSTALLATION_FAILED),
    (S.INSTALL_VERIFICATION_FAILED, S.INSTALLATION_FAILED),
    (S.DOWNLOADING, S.DOWNLOADING), (S.INSTALLED, S.INSTALLED), (S.IDLE, S.IDLE),
])
def test_a_signed_only_status_is_said_as_its_core_status(status, core):
    assert core_status(status) is core
