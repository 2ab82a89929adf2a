"""Guarded hardware tests: `chargerfw test contactor|rcd|pilot|lock`.

While the service runs, a test is a request on its control socket (``test.contactor``,
``test.rcd``, ``test.pilot``, ``test.lock``): the service owns the pins and runs the test
between its own safety checks. With the service stopped, the command takes the hardware lock,
builds the board itself and runs the same sequence here. Either way the refusals come first
(:func:`chargerfw.station.technician.hardware_test_refusal`: a transaction open, a vehicle
connected, a fault input tripped, ...) and `test contactor` asks for confirmation unless
``--yes``.

Exit status: 0 passed; 1 failed or refused (or not confirmed); 2 bad options / nothing
configured to test; 3 the service or a device cannot be reached.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

import click

from chargerfw.cli import config_option
from chargerfw.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Station,
    echo_json,
    fail,
    json_option,
    load_station,
    reaching_the_hardware,
    station_access,
)
from chargerfw.control.access import Confirm
from chargerfw.control.api import (
    BadReply,
    ContactorTestReply,
    ContactorTestRequest,
    ContactorVerdict,
    ControlError,
    HardwareTestReply,
    LockTestReply,
    LockTestRequest,
    PilotTestReply,
    PilotTestRequest,
    RcdTestReply,
    RcdTestRequest,
    Refused,
    Request,
    encode_reply,
)
from chargerfw.control.client import ControlUnavailable
from chargerfw.drivers.types import PilotMode

ReplyT = TypeVar("ReplyT", bound=HardwareTestReply)

yes_option = click.option("--yes", "-y", is_flag=True, help="do not ask for confirmation")
connector_option = click.option("--connector", "connector_id", type=click.IntRange(1, 2),
                                help="connector to test [default: the only one]")


@click.group("test")
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


def _confirmation(question: str, yes: bool) -> Confirm:
    def confirm() -> None:
        if yes:
            return
        try:
            if click.confirm(question, default=False, err=True):
                return
        except click.Abort:
            pass
        raise Refused("not confirmed (give --yes to run without asking)")
    return confirm


def _run(station: Station, request: Request[ReplyT], as_json: bool,
         confirm: Confirm | None = None) -> tuple[ReplyT, str]:
    """The test through the service when it runs, else here on the hardware; its reply and
    which way it went. A refusal exits 1 (with ``{"passed": false, "refused": ...}`` for
    --json)."""
    method = request.method.value
    access = station_access(station)
    try:
        with reaching_the_hardware():
            reply = access.run_test(request, confirm)
    except ControlUnavailable as exc:
        fail(f"the service stopped answering: {exc}", EXIT_UNREACHABLE)
    except BadReply as exc:
        fail(exc.message, EXIT_UNREACHABLE)
    except ControlError as exc:  # refused here, or by the service (bad params too)
        if exc.method_missing:
            fail(f"the running service does not offer {method}; stop it (systemctl stop "
                 "chargerfw) to test directly on the hardware", EXIT_UNREACHABLE)
        _refused(exc.message, as_json)
    return reply, access.via.value


def _finish(request: Request[Any], reply: HardwareTestReply, via: str, as_json: bool,
            lines: list[str]) -> NoReturn:
    if as_json:
        echo_json({**encode_reply(type(request), reply), "via": via})
    else:
        for line in lines:
            click.echo(line)
        click.echo("PASSED" if reply.passed else "FAILED")
    raise SystemExit(EXIT_OK if reply.passed else EXIT_FAILED)


def _refused(message: str, as_json: bool) -> NoReturn:
    if as_json:
        echo_json({"passed": False, "refused": message})
    click.echo(f"refused: {message}", err=True)
    raise SystemExit(EXIT_FAILED)


# -- contactor -------------------------------------------------------------------------------------
def _contactor_lines(reply: ContactorTestReply) -> list[str]:
    lines = [f"contactor {reply.connector}: {step.step}: commanded {step.commanded}, "
             f"mirror {step.feedback.value}" for step in reply.steps]
    if reply.result is ContactorVerdict.WELDED:
        lines.append("WELDED: the mirror contact stays closed with the coil off. Isolate the "
                     "supply and replace the contactor before any charging.")
    elif reply.result is ContactorVerdict.FAILED_TO_CLOSE:
        lines.append("FAILED TO CLOSE: the mirror contact stayed open with the coil on. Check "
                     "the coil supply, its wiring and the mirror contact wiring.")
    if reply.interrupted_by:
        lines.append(f"ENDED EARLY: {reply.interrupted_by} while the contactor was under test; "
                     "the coil was opened at once.")
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
    request = ContactorTestRequest(cid)
    reply, via = _run(station, request, as_json, _confirmation(question, yes))
    _finish(request, reply, via, as_json, _contactor_lines(reply))


# -- RCD -------------------------------------------------------------------------------------------
def _rcd_lines(reply: RcdTestReply) -> list[str]:
    trip_time = reply.trip_time_s
    lines = [f"RCM test pulse: trip {'seen' if reply.tripped else 'NOT seen'}"
             + (f" after {trip_time * 1000:.0f} ms" if trip_time is not None else ""),
             f"RCM after the pulse: {'cleared' if reply.cleared else 'NOT cleared'}"]
    if not reply.tripped:
        lines.append("The RCM did not trip on its test output: check the test wiring and the "
                     "RCM module; do not charge with an untested RCM.")
    elif not reply.cleared:
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
    request = RcdTestRequest()
    reply, via = _run(station, request, as_json)
    _finish(request, reply, via, as_json, _rcd_lines(reply))


# -- pilot -----------------------------------------------------------------------------------------
def _pilot_lines(reply: PilotTestReply) -> list[str]:
    lines = [f"connector {reply.connector}: vehicle "
             f"{'connected' if reply.vehicle else 'not connected'}"]
    for s in reply.steps:
        offer = (f"PWM {s.duty_percent} % ({s.current_a:g} A)"
                 if s.output is PilotMode.PWM and s.current_a is not None else s.output.value)
        lines.append(f"  {offer:<24} read {s.state.value:<11} high {s.high_v:+6.2f} V  "
                     f"low {s.low_v:+6.2f} V  "
                     + ("ok" if s.ok else f"EXPECTED {'/'.join(e.value for e in s.expected)}"))
    if not reply.passed:
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
    request = PilotTestRequest(_pick_connector(station, connector_id))
    try:
        reply, via = _run(station, request, as_json)
    except OSError as exc:  # I2C error from the ADC
        fail(f"the pilot ADC does not answer: {exc}", EXIT_UNREACHABLE)
    _finish(request, reply, via, as_json, _pilot_lines(reply))


# -- lock ------------------------------------------------------------------------------------------
def _lock_lines(reply: LockTestReply) -> list[str]:
    lines = [f"lock {reply.connector}: {s.command} -> {s.result.value}" for s in reply.steps]
    if not reply.feedback:
        lines.append("(no lock feedback switch configured: only the command was checked)")
    if not reply.passed:
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
    request = LockTestRequest(cid)
    reply, via = _run(station, request, as_json)
    _finish(request, reply, via, as_json, _lock_lines(reply))
