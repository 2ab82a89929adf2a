"""UpdateFirmware through the simulated station's runtime against a test backend: download from
a loopback HTTP server, verify, install a real release into a temporary prefix, restart; the new
release's health check commits it or rolls it back, and the backend receives the exact
FirmwareStatusNotification sequence.

The prefix's old release is a fake complete slot of this tree's version (only the new one must
be built and installed); the runtime of "the new release" is this tree's runtime told that its
version is the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fakes import wait_until
from firmware_servers import HttpFiles, http_server
from ocpp_testcsms import TestCsms
from release_builds import RELEASE_KEY, build_test_release
from runtime_helpers import ctl, sim_station_config

import chargerfw
from chargerfw.config import FirmwareSection, StationConfig
from chargerfw.release import build_manifest, slot_status
from chargerfw.release.manifest import public_key_pem
from chargerfw.release.trial import read_outcome, read_trial
from chargerfw.runtime import assembly
from chargerfw.runtime.firmware import FirmwareUpdater
from chargerfw.runtime.station import RunOutcome, StationRuntime
from chargerfw.sim.hardware import simulated_hardware
from chargerfw.station.enums import ChargePointStatus
from chargerfw.station.firmware import Phase
from chargerfw.store.schema import MIGRATIONS

pytestmark = pytest.mark.timeout(180)

OLD = chargerfw.__version__
NEW = f"{OLD}.1"
KEY = RELEASE_KEY


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_test_release(tmp_path_factory.mktemp("build"), NEW, KEY).read_bytes()


def old_slot(prefix: Path) -> None:
    slot = prefix / "releases" / OLD
    (slot / "bin").mkdir(parents=True)
    (slot / "manifest.json").write_bytes(build_manifest(OLD, "0", {}).to_json_bytes())
    (slot / ".complete").write_text(OLD)
    os.symlink(f"releases/{OLD}", prefix / "current")


def station_config(tmp_path: Path, url: str, key=KEY, **firmware) -> StationConfig:
    _, config = sim_station_config(tmp_path, url)
    pub = tmp_path / "release.pub"
    pub.write_bytes(public_key_pem(key.public_key()))
    prefix = tmp_path / "opt"
    old_slot(prefix)
    section = FirmwareSection(prefix=prefix, public_key=pub, **firmware)
    return msgspec.structs.replace(config, firmware=section)


@contextlib.asynccontextmanager
async def backend_and_files(files: dict[str, bytes]) -> AsyncIterator[tuple[TestCsms, HttpFiles]]:
    with http_server(files) as server:
        async with TestCsms() as csms:
            yield csms, server


def statuses(csms: TestCsms) -> list[str]:
    return [m.payload["status"] for m in csms.of("FirmwareStatusNotification")]


async def update_firmware(csms: TestCsms, location: str, **extra) -> None:
    payload = {"location": location, "retrieveDate": "2020-01-01T00:00:00Z", **extra}
    reply = await csms.send_raw(json.dumps([2, "fw", "UpdateFirmware", payload]), "fw")
    assert reply == [3, "fw", {}]


@contextlib.asynccontextmanager
async def station(config: StationConfig, csms: TestCsms, *, version: str = OLD,
                  self_test: Callable[[], Awaitable[list[str]]] | None = None,
                  monkeypatch: pytest.MonkeyPatch, runtimes: list[StationRuntime] | None = None) -> AsyncIterator[tuple[StationRuntime,
                                                                          asyncio.Task]]:
    """One run of the station (as release ``version``) until the test ends it or it exits."""
    monkeypatch.setattr(assembly, "FirmwareUpdater",
                        functools.partial(FirmwareUpdater, version=version, tick_s=0.1))
    socket_dir = Path(tempfile.mkdtemp(prefix="cfw-", dir="/tmp"))
    runtime = StationRuntime(config, control_socket=socket_dir / "control.sock",
                             shutdown_flush_s=3.0, simulator=simulated_hardware,
                             self_test=self_test)
    if runtimes is not None:
        runtimes.append(runtime)
    booted = len(csms.of("BootNotification"))
    task = asyncio.create_task(runtime.run())
    try:
        await csms.wait_for(lambda: len(csms.of("BootNotification")) > booted or task.done(),
                            timeout=60)
        yield runtime, task
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 30)


async def outcome_of(task: asyncio.Task, timeout: float = 120) -> RunOutcome:
    return await asyncio.wait_for(asyncio.shield(task), timeout)


async def test_a_release_signed_with_another_key_is_refused(tmp_path, release, monkeypatch):
    async with backend_and_files({"/r.tar": release}) as (csms, files):
        config = station_config(tmp_path, csms.url, key=Ed25519PrivateKey.generate())
        async with station(config, csms, monkeypatch=monkeypatch):
            await update_firmware(csms, f"{files.url}/r.tar")
            await csms.wait_for(lambda: statuses(csms)[-1:] == ["InstallationFailed"], timeout=60)
    assert statuses(csms) == ["Downloading", "Downloaded", "InstallationFailed"]
    assert slot_status(config.firmware.prefix).current.version == OLD
    assert not (config.firmware.prefix / "releases" / NEW).exists()
    assert not list(config.firmware_download_dir.iterdir())


async def test_a_missing_file_is_download_failed_after_the_tries(tmp_path, monkeypatch):
    async with backend_and_files({}) as (csms, files):
        config = station_config(tmp_path, csms.url)
        async with station(config, csms, monkeypatch=monkeypatch):
            await update_firmware(csms, f"{files.url}/missing.tar", retries=2, retryInterval=1)
            await csms.wait_for(lambda: statuses(csms)[-1:] == ["DownloadFailed"], timeout=60)
    assert statuses(csms) == ["Downloading", "DownloadFailed"]
    assert files.ranges == [None, None]  # two tries


async def install_and_restart(config: StationConfig, csms: TestCsms, location: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The old release takes the update, installs the new one and exits to be restarted."""
    async with station(config, csms, monkeypatch=monkeypatch) as (runtime, task):
        await update_firmware(csms, location)
        assert await outcome_of(task) is RunOutcome.HARD_RESET
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing"]
    prefix = config.firmware.prefix
    assert slot_status(prefix).current.version == NEW
    assert slot_status(prefix).previous.version == OLD
    trial = read_trial(prefix)
    assert (trial.new_version, trial.previous_version) == (NEW, OLD)
    assert trial.store_backup is not None and trial.store_backup.is_file()
    assert (prefix / "bin" / "chargerfw-boot").stat().st_mode & 0o111
    done = subprocess.run([str(prefix / "current" / "bin" / "chargerfw"), "--version"],
                          capture_output=True, text=True, check=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.stdout.split()[-1] == NEW


async def test_update_installs_restarts_and_the_new_release_commits(tmp_path, release,
                                                                    monkeypatch):
    async with backend_and_files({"/r.tar": release}) as (csms, files):
        config = station_config(tmp_path, csms.url)
        await install_and_restart(config, csms, f"{files.url}/r.tar", monkeypatch)
        held: list[str] = []
        runtimes: list[StationRuntime] = []

        async def self_test() -> list[str]:
            held.append(runtimes[0].connector_outputs(1).status.value)
            return []

        async with station(config, csms, version=NEW, self_test=self_test,
                           monkeypatch=monkeypatch, runtimes=runtimes) as (runtime, task):
            await csms.wait_for(lambda: statuses(csms)[-1:] == ["Installed"], timeout=60)
            assert runtime.connector_outputs(1).status is ChargePointStatus.AVAILABLE
            assert [e.tech_info for e in runtime.store.security_events()
                    if e.type == "FirmwareUpdated"] == [f"chargerfw {NEW} installed"]
            await csms.wait_for(lambda: "FirmwareUpdated" in [
                m.payload["type"] for m in csms.of("SecurityEventNotification")])
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert held == ["Unavailable"]  # no session during the trial
    prefix = config.firmware.prefix
    assert read_trial(prefix) is None and read_outcome(prefix) is None
    assert slot_status(prefix).current.version == NEW
    assert not list(config.firmware_download_dir.iterdir())


async def test_a_new_release_failing_its_self_test_rolls_back(tmp_path, release, monkeypatch):
    async with backend_and_files({"/r.tar": release}) as (csms, files):
        config = station_config(tmp_path, csms.url)
        await install_and_restart(config, csms, f"{files.url}/r.tar", monkeypatch)

        async def failing() -> list[str]:
            return ["pins readable: the service cannot read the ADC"]

        async with station(config, csms, version=NEW, self_test=failing,
                           monkeypatch=monkeypatch) as (runtime, task):
            assert await outcome_of(task, 60) is RunOutcome.HARD_RESET
        prefix = config.firmware.prefix
        assert slot_status(prefix).current.version == OLD
        assert read_outcome(prefix).reason == ("self-test failed: pins readable: the service "
                                               "cannot read the ADC")
        # The new release had migrated the store past what the old one reads.
        with contextlib.closing(sqlite3.connect(config.storage.path)) as db:
            db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
        async with station(config, csms, monkeypatch=monkeypatch):
            await csms.wait_for(lambda: statuses(csms)[-1:] == ["InstallationFailed"], timeout=60)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert read_trial(prefix) is None and read_outcome(prefix) is None


async def test_a_new_release_never_accepted_rolls_back_at_its_deadline(tmp_path, release,
                                                                       monkeypatch):
    async with backend_and_files({"/r.tar": release}) as (csms, files):
        config = station_config(tmp_path, csms.url, health_check_s=3)
        await install_and_restart(config, csms, f"{files.url}/r.tar", monkeypatch)
        csms.behaviour.boot_status = "Rejected"
        async with station(config, csms, version=NEW, monkeypatch=monkeypatch) as (_, task):
            assert await outcome_of(task, 60) is RunOutcome.HARD_RESET
        assert read_outcome(config.firmware.prefix).reason == (
            "no Accepted BootNotification before the deadline")
        csms.behaviour.boot_status = "Accepted"
        async with station(config, csms, monkeypatch=monkeypatch):
            await csms.wait_for(lambda: statuses(csms)[-1:] == ["InstallationFailed"], timeout=60)
    assert statuses(csms)[-2:] == ["Installing", "InstallationFailed"]
    assert slot_status(config.firmware.prefix).current.version == OLD


async def test_the_install_waits_for_the_running_transaction(tmp_path, release, monkeypatch):
    async with backend_and_files({"/r.tar": release}) as (csms, files):
        config = station_config(tmp_path, csms.url)
        async with station(config, csms, monkeypatch=monkeypatch) as (runtime, task):
            sock = runtime.control_socket
            await csms.wait_for(lambda: csms.of("StatusNotification"))  # online
            await ctl(sock, "sim.tap", uid="04AABB")
            await csms.wait_for(lambda: csms.of("Authorize"))
            await ctl(sock, "sim.plug")
            await csms.wait_for(lambda: csms.of("StartTransaction"))
            await ctl(sock, "sim.charge")
            await update_firmware(csms, f"{files.url}/r.tar")
            await csms.wait_for(lambda: statuses(csms) == ["Downloading", "Downloaded"],
                                timeout=60)
            await asyncio.sleep(1.0)  # ten ticks of the updater: none may start installing
            assert runtime.firmware.state.phase is Phase.WAITING_FOR_TRANSACTIONS
            assert runtime.connector_outputs(1).status is ChargePointStatus.CHARGING
            await ctl(sock, "sim.tap", uid="04AABB")  # the driver ends the session
            # Once it ended the connector takes no other session: Unavailable until the restart.
            await wait_until(lambda: runtime.connector_outputs(1).status
                             is ChargePointStatus.UNAVAILABLE, what="connector Unavailable")
            assert await outcome_of(task) is RunOutcome.HARD_RESET
    actions = [(m.action, m.payload.get("status")) for m in csms.received]
    stop = actions.index(("StopTransaction", None))
    assert stop < actions.index(("FirmwareStatusNotification", "Installing"))
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing"]
