"""Guarded hardware tests: `chargerfw test contactor|rcd|pilot|lock`.

While the service runs, a test is a request on its control socket (``test.contactor``,
``test.rcd``, ``test.pilot``, ``test.lock``): the service owns the pins and runs the test
between its own safety checks. With the service stopped, the command takes the hardware lock,
builds the board itself and runs the same sequence (``chargerfw.diagnostics.run_*_test``)
here. Either way the refusals are checked first (vehicle connected, transaction running, fault
input tripped) and `test contactor` asks for confirmation unless ``--yes``.

Exit status: 0 passed; 1 failed or refused (or not confirmed); 2 bad options / nothing
configured to test; 3 the service or a device cannot be reached.
"""

from __future__ import annotations

from typing import Any

import click

from chargerfw.cli import config_option, main
from chargerfw.cli.diag import (
    Station,
    direct_hardware,
    echo_json,
    fail,
    json_option,
    load_station,
    status_connectors,
)
from chargerfw.diagnostics import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    VEHICLE_STATES,
    Refusal,
    ServiceError,
    ServiceUnavailable,
    call_service,
    run_contactor_test,
    run_lock_test,
    run_pilot_test,
    run_rcd_test,
    settled_reading,
)
from chargerfw.drivers.board import Board, ConnectorDevices
from chargerfw.drivers.types import PilotState

TEST_TIMEOUT_S = 30.0


yes_option = click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
connector_option = click.option("--connector", "connector_id", type=click.IntRange(1, 2),
                                help="connector to test [default: the only one]")


@main.group("test")
def test_group() -> None:
    """Guarded hardware tests (contactor, RCD, pilot, lock)."""


# -- shared ----------------------------------------------------------------------------------------
def _pick_connector(station: Station, connector_id: int | None) -> int:
    ids = [c.id for c in station.config.connector]
    if connector_id is None:
        if len(ids) > 1:
            raise click.UsageError(f"the station has connectors {ids}: pick one with --connector")
        return ids[0]
    if connector_id not in ids:
        fail(f"no connector {connector_id} in {station.config_path} (have {ids})", EXIT_USAGE)
    return connector_id


def _status_or_none() -> dict[str, Any] | None:
    try:
        status = call_service("status")
    except ServiceUnavailable:
        return None
    except ServiceError as exc:
        fail(f"the service answered status with an error: {exc.message}", EXIT_UNREACHABLE)
    return status if isinstance(status, dict) else {}


def _service_refusals(status: dict[str, Any], connector_id: int, *,
                      vehicle: bool, transaction: bool) -> None:
    """Refuse from what the service's status says (the service checks again itself)."""
    for c in status_connectors(status):
        if str(c.get("id")) != str(connector_id):
            continue
        pilot = str(c.get("pilot", c.get("pilot_state", "")))
        if transaction and c.get("transaction"):
            raise Refusal(f"a transaction runs on connector {connector_id}: stop it first")
        if vehicle and pilot in VEHICLE_STATES:
            raise Refusal(f"a vehicle is connected to connector {connector_id} (pilot {pilot}): "
                          "unplug it first")


def _store_refusals(station: Station, connector_id: int | None) -> None:
    store = station.open_store()
    if store is None:
        return
    try:
        open_tx = [t for t in store.open_transactions()
                   if connector_id is None or t.connector_id == connector_id]
    finally:
        store.close()
    if open_tx:
        t = open_tx[0]
        raise Refusal(f"transaction {t.local_id} (idTag {t.id_tag}) is still open on connector "
                      f"{t.connector_id} in the store: start the service so it ends it "
                      "(PowerLoss), or stop the session, then test")


def _run_service_test(method: str, **params: Any) -> dict[str, Any]:
    try:
        result = call_service(method, timeout_s=TEST_TIMEOUT_S, **params)
    except ServiceError as exc:
        if exc.method_missing:
            fail(f"the running service does not offer {method}; stop it (systemctl stop "
                 "chargerfw) to test directly on the hardware", EXIT_UNREACHABLE)
        raise Refusal(exc.message) from None
    except ServiceUnavailable as exc:
        fail(f"the service stopped answering: {exc}", EXIT_UNREACHABLE)
    if not isinstance(result, dict) or "passed" not in result:
        fail(f"the service answered {method} with {result!r}", EXIT_UNREACHABLE)
    result.setdefault("via", "service")
    return result


def _direct_vehicle_refusal(devices: ConnectorDevices) -> str:
    state = settled_reading(devices.pilot).state.value
    if state != PilotState.A.value:
        raise Refusal(f"connector {devices.id}: pilot reads {state}, not A (no vehicle): "
                      "unplug the vehicle first")
    return state


def _fault_input_refusal(board: Board) -> None:
    for name, device in (("RCM", board.rcm), ("emergency stop", board.emergency_stop)):
        if device is not None and device.refresh():
            raise Refusal(f"the {name} input is tripped: clear its cause first")


def _finish(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    result.setdefault("via", "direct")
    if as_json:
        echo_json(result)
    else:
        for line in lines:
            click.echo(line)
        click.echo("PASSED" if result["passed"] else "FAILED")
    raise SystemExit(EXIT_OK if result["passed"] else EXIT_FAILED)


def _refused(exc: Refusal, as_json: bool) -> None:
    if as_json:
        echo_json({"passed": False, "refused": str(exc)})
    click.echo(f"refused: {exc}", err=True)
    raise SystemExit(EXIT_FAILED)


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    try:
        if click.confirm(question, default=False, err=True):
            return
    except click.Abort:
        pass
    raise Refusal("not confirmed (give --yes to run without asking)")


# -- contactor -------------------------------------------------------------------------------------
def _contactor_lines(result: dict[str, Any], connector_id: int) -> list[str]:
    lines = [f"contactor {connector_id}: {step.get('step')}: commanded {step.get('commanded')}, "
             f"mirror {step.get('feedback')}" for step in result.get("steps", [])]
    verdict = result.get("result")
    if verdict == "welded":
        lines.append("WELDED: the mirror contact stays closed with the coil off. Isolate the "
                     "supply and replace the contactor before any charging.")
    elif verdict == "failed_to_close":
        lines.append("FAILED TO CLOSE: the mirror contact stayed open with the coil on. Check "
                     "the coil supply, its wiring and the mirror contact wiring.")
    return lines


@test_group.command("contactor")
@config_option
@connector_option
@yes_option
@json_option
def test_contactor(config_path: str, connector_id: int | None, yes: bool, as_json: bool) -> None:
    """Close and open the contactor, checking the mirror contact each time (welded / failed
    to close). Refused while a vehicle is connected or a transaction runs."""
    station = load_station(config_path)
    cid = _pick_connector(station, connector_id)
    if station.config.connector_by_id(cid).contactor.feedback_pin is None:
        fail(f"connector {cid} has no contactor feedback_pin: without the mirror contact the "
             "test cannot tell anything", EXIT_USAGE)
    question = (f"Close the contactor of connector {cid} for about a second "
                "(its outlet will be live)?")
    try:
        status = _status_or_none()
        if status is not None:
            _service_refusals(status, cid, vehicle=True, transaction=True)
            _confirm(question, yes)
            result = _run_service_test("test.contactor", connector=cid)
        else:
            _store_refusals(station, cid)
            with direct_hardware(station.config, "chargerfw test contactor") as board:
                devices = board.connectors[cid]
                _fault_input_refusal(board)
                _direct_vehicle_refusal(devices)
                _confirm(question, yes)
                result = run_contactor_test(devices)
    except Refusal as exc:
        _refused(exc, as_json)
    _finish(result, as_json, _contactor_lines(result, cid))


# -- RCD -------------------------------------------------------------------------------------------
def _rcd_lines(result: dict[str, Any]) -> list[str]:
    trip_time = result.get("trip_time_s")
    lines = [f"RCM test pulse: trip {'seen' if result.get('tripped') else 'NOT seen'}"
             + (f" after {trip_time * 1000:.0f} ms" if isinstance(trip_time, int | float) else ""),
             f"RCM after the pulse: {'cleared' if result.get('cleared') else 'NOT cleared'}"]
    if not result.get("tripped"):
        lines.append("The RCM did not trip on its test output: check the test wiring and the "
                     "RCM module; do not charge with an untested RCM.")
    elif not result.get("cleared"):
        lines.append("The RCM stays tripped after the test: check the module and its supply.")
    return lines


@test_group.command("rcd")
@config_option
@json_option
def test_rcd(config_path: str, as_json: bool) -> None:
    """Pulse the RCM test output and check that the trip is seen and clears again."""
    station = load_station(config_path)
    rcm = station.config.rcm
    if rcm is None or rcm.test_pin is None:
        fail("no [rcm] with a test_pin in the config: nothing to test", EXIT_USAGE)
    try:
        status = _status_or_none()
        if status is not None:
            for c in station.config.connector:
                _service_refusals(status, c.id, vehicle=False, transaction=True)
            result = _run_service_test("test.rcd")
        else:
            _store_refusals(station, None)
            with direct_hardware(station.config, "chargerfw test rcd") as board:
                result = run_rcd_test(board)
    except Refusal as exc:
        _refused(exc, as_json)
    _finish(result, as_json, _rcd_lines(result))


# -- pilot -----------------------------------------------------------------------------------------
def _pilot_lines(result: dict[str, Any], connector_id: int) -> list[str]:
    lines = [f"connector {connector_id}: vehicle "
             f"{'connected' if result.get('vehicle') else 'not connected'}"]
    for s in result.get("steps", []):
        offer = (f"PWM {s.get('duty_percent')} % ({s.get('current_a'):g} A)"
                 if s.get("output") == "pwm" else str(s.get("output")))
        lines.append(f"  {offer:<24} read {s.get('state'):<11} high {s.get('high_v'):+6.2f} V  "
                     f"low {s.get('low_v'):+6.2f} V  "
                     + ("ok" if s.get("ok") else f"EXPECTED {'/'.join(s.get('expected', []))}"))
    if not result.get("passed"):
        lines.append("A state other than expected: check the pilot generator (PWM pin, +-12 V "
                     "supply), the ADC front end (adc_scale/adc_offset) and the cable.")
    return lines


@test_group.command("pilot")
@config_option
@connector_option
@json_option
def test_pilot(config_path: str, connector_id: int | None, as_json: bool) -> None:
    """Offer standby, 6/16/32 A PWM and state F; read back what the ADC classifies."""
    station = load_station(config_path)
    cid = _pick_connector(station, connector_id)
    max_a = station.config.connector_by_id(cid).max_current_a
    try:
        status = _status_or_none()
        if status is not None:
            _service_refusals(status, cid, vehicle=False, transaction=True)
            result = _run_service_test("test.pilot", connector=cid)
        else:
            _store_refusals(station, cid)
            with direct_hardware(station.config, "chargerfw test pilot") as board:
                result = run_pilot_test(board.connectors[cid], max_a)
    except Refusal as exc:
        _refused(exc, as_json)
    except OSError as exc:  # I2C error from the ADC
        fail(f"the pilot ADC does not answer: {exc}", EXIT_UNREACHABLE)
    _finish(result, as_json, _pilot_lines(result, cid))


# -- lock ------------------------------------------------------------------------------------------
def _lock_lines(result: dict[str, Any], connector_id: int) -> list[str]:
    lines = [f"lock {connector_id}: {s.get('command')} -> {s.get('result')}"
             for s in result.get("steps", [])]
    if not result.get("feedback"):
        lines.append("(no lock feedback switch configured: only the command was checked)")
    if not result.get("passed"):
        lines.append("The lock did not confirm: check the actuator, its supply and the "
                     "feedback switch; a cable may be jammed in the socket.")
    return lines


@test_group.command("lock")
@config_option
@connector_option
@json_option
def test_lock(config_path: str, connector_id: int | None, as_json: bool) -> None:
    """Lock and unlock the connector's cable lock, checking its feedback switch."""
    station = load_station(config_path)
    cid = _pick_connector(station, connector_id)
    if station.config.connector_by_id(cid).lock is None:
        fail(f"connector {cid} has no [connector.lock]: nothing to test", EXIT_USAGE)
    try:
        status = _status_or_none()
        if status is not None:
            _service_refusals(status, cid, vehicle=False, transaction=True)
            result = _run_service_test("test.lock", connector=cid)
        else:
            _store_refusals(station, cid)
            with direct_hardware(station.config, "chargerfw test lock") as board:
                result = run_lock_test(board.connectors[cid])
    except Refusal as exc:
        _refused(exc, as_json)
    _finish(result, as_json, _lock_lines(result, cid))
