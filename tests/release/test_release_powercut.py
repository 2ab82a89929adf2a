"""An update with the station run as systemd runs it: ``<prefix>/bin/chargerfw-boot run`` over
real release slots, started again whenever it ends, and SIGKILLed (a power cut) at a step.
Every run ends with a station that boots one of the two releases, and the backend receives the
FirmwareStatusNotifications of the whole sequence.

The slots hold the chargerfw wheel only; the station's dependencies come from this test
environment through PYTHONPATH (its editable chargerfw is a .pth finder, which PYTHONPATH does
not load: ``chargerfw`` itself comes from the slot)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from firmware_servers import HttpFiles, http_server
from ocpp_testcsms import TestCsms
from release_builds import build_test_release, source_with_version
from runtime_helpers import ctl, dump_toml, sim_station_config

import chargerfw
from chargerfw import control
from chargerfw.release import install_release, slot_status
from chargerfw.release.build import build_release
from chargerfw.release.manifest import public_key_pem
from chargerfw.release.trial import boots_counted, read_trial

pytestmark = pytest.mark.timeout(300)

OLD = chargerfw.__version__
NEW = f"{OLD}.1"
KEY = Ed25519PrivateKey.generate()
SITE_PACKAGES = sysconfig.get_paths()["purelib"]


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    built = {version: build_test_release(tmp_path_factory.mktemp(f"build-{version}"), version,
                                         KEY)
             for version in (OLD, NEW)}
    # A release that installs and says its version but cannot run the station.
    source = source_with_version(tmp_path_factory.mktemp("broken") / "src", NEW)
    runtime = source / "chargerfw" / "runtime" / "station.py"
    runtime.write_text(runtime.read_text() + '\nraise RuntimeError("broken release")\n')
    built["broken"] = build_release(source, tmp_path_factory.mktemp("broken-dist"), KEY,
                                    min_previous_version="0", with_dependencies=False)
    return built


class Service:
    """Stands in for systemd: runs the launcher, and starts it again whenever it ends."""

    def __init__(self, prefix: Path, config_path: Path, workdir: Path) -> None:
        self.prefix = prefix
        self.config_path = config_path
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="cfw-", dir="/tmp"))
        self.log_path = workdir / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "control.sock"

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "VIRTUAL_ENV")}
        env.update(PYTHONPATH=SITE_PACKAGES, CHARGERFW_RUNTIME_DIR=str(self.runtime_dir))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.prefix / "bin" / "chargerfw-boot"), "run", "--config",
                 str(self.config_path)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env)
        self.starts += 1

    async def _supervise(self) -> None:
        while not self._stopping:
            self._start()
            assert self.proc is not None
            while self.proc.poll() is None:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # RestartSec

    def power_cut(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    async def status(self) -> dict | None:
        with contextlib.suppress(control.ControlUnavailable, ConnectionError, OSError,
                                 TimeoutError):
            return await ctl(self.socket, "status")
        return None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        self._task = asyncio.create_task(self._supervise())
        try:
            yield self
        finally:
            self._stopping = True
            if self.proc is not None and self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 20)
                except TimeoutError:
                    self.power_cut()
            await asyncio.wait_for(self._task, 30)
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]


def prepare(tmp_path: Path, url: str, releases: dict[str, Path], **firmware) -> Service:
    """A prefix with the old release current (as `make install` leaves it) and a station
    config whose [firmware] section names it."""
    prefix = tmp_path / "opt"
    install_release(releases[OLD], prefix, KEY.public_key(), with_dependencies=False)
    pub = tmp_path / "release.pub"
    pub.write_bytes(public_key_pem(KEY.public_key()))
    config_path, _ = sim_station_config(tmp_path, url)
    section = {"prefix": str(prefix), "public_key": str(pub), "health_check_s": 60,
               **firmware}
    config_path.write_text(config_path.read_text() + dump_toml({"firmware": section}))
    return Service(prefix, config_path, tmp_path)


def statuses(csms: TestCsms) -> list[str]:
    return [m.payload["status"] for m in csms.of("FirmwareStatusNotification")]


def booted_versions(csms: TestCsms) -> list[str]:
    return [m.payload["firmwareVersion"] for m in csms.of("BootNotification")]


async def wait_for(predicate, what: str, service: Service, timeout: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _holds(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s; log:\n{service.log()}")
        await asyncio.sleep(0.05)


async def _holds(predicate) -> bool:
    result = predicate()
    if asyncio.iscoroutine(result):
        result = await result
    return bool(result)


async def update_firmware(csms: TestCsms, location: str) -> None:
    payload = {"location": location, "retrieveDate": "2020-01-01T00:00:00Z"}
    assert await csms.send_raw(json.dumps([2, "fw", "UpdateFirmware", payload]), "fw") == [
        3, "fw", {}]


@contextlib.asynccontextmanager
async def backend(files: dict[str, bytes]) -> AsyncIterator[tuple[TestCsms, HttpFiles]]:
    with http_server(files) as server:
        async with TestCsms() as csms:
            yield csms, server


async def test_a_cut_download_resumes_and_the_new_release_boots(tmp_path, releases):
    async with backend({"/r.tar": releases[NEW].read_bytes()}) as (csms, files):
        files.pause_s = 0.05
        service = prepare(tmp_path, csms.url, releases)
        async with service.running():
            await wait_for(lambda: booted_versions(csms) == [OLD], "old release booted", service)
            await update_firmware(csms, f"{files.url}/r.tar")

            async def downloading() -> bool:
                status = await service.status()
                firmware = (status or {}).get("firmware") or {}
                return firmware.get("phase") == "downloading" and (firmware.get("bytes") or 0) > 0

            await wait_for(downloading, "download under way", service)
            service.power_cut()
            await wait_for(lambda: statuses(csms)[-1:] == ["Idle"], "update done", service)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "Installed", "Idle"]
    assert booted_versions(csms) == [OLD, OLD, NEW]
    resumed = [r for r in files.ranges if r is not None]
    assert len(resumed) == 1 and resumed[0] != "bytes=0-"
    assert slot_status(service.prefix).current.version == NEW
    assert read_trial(service.prefix) is None


async def test_a_cut_while_the_slot_is_built_keeps_the_old_release(tmp_path, releases):
    async with backend({"/r.tar": releases[NEW].read_bytes()}) as (csms, files):
        service = prepare(tmp_path, csms.url, releases)
        slot = service.prefix / "releases" / NEW
        async with service.running():
            await wait_for(lambda: booted_versions(csms) == [OLD], "old release booted", service)
            await update_firmware(csms, f"{files.url}/r.tar")
            await wait_for(slot.exists, "slot being built", service)
            service.power_cut()
            await wait_for(lambda: statuses(csms)[-1:] == ["Idle"], "update ended", service)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "InstallationFailed",
                              "Idle"]
    assert booted_versions(csms) == [OLD, OLD]
    assert slot_status(service.prefix).current.version == OLD


async def test_a_cut_during_the_trial_then_healthy(tmp_path, releases):
    async with backend({"/r.tar": releases[NEW].read_bytes()}) as (csms, files):
        service = prepare(tmp_path, csms.url, releases)
        async with service.running():
            await wait_for(lambda: booted_versions(csms) == [OLD], "old release booted", service)
            csms.behaviour.boot_status = "Rejected"  # the new release waits for Accepted
            await update_firmware(csms, f"{files.url}/r.tar")
            await wait_for(lambda: NEW in booted_versions(csms), "new release on trial",
                           service)
            service.power_cut()
            await wait_for(lambda: boots_counted(service.prefix) == 2, "second start", service)
            csms.behaviour.boot_status = "Accepted"
            await wait_for(lambda: statuses(csms)[-1:] == ["Idle"], "update done", service)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "Installed", "Idle"]
    assert slot_status(service.prefix).current.version == NEW
    assert read_trial(service.prefix) is None


async def test_a_release_that_cannot_start_is_rolled_back_by_the_launcher(tmp_path, releases):
    async with backend({"/r.tar": releases["broken"].read_bytes()}) as (csms, files):
        service = prepare(tmp_path, csms.url, releases, boot_attempts=2)
        async with service.running():
            await wait_for(lambda: booted_versions(csms) == [OLD], "old release booted", service)
            await update_firmware(csms, f"{files.url}/r.tar")
            await wait_for(lambda: statuses(csms)[-1:] == ["Idle"], "update ended", service)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "InstallationFailed",
                              "Idle"]
    assert booted_versions(csms) == [OLD, OLD]
    status = slot_status(service.prefix)
    assert (status.current.version, status.previous.version) == (OLD, NEW)
    log = service.log_path.read_text()
    assert "did not get healthy in 2 starts" in log
    assert "RuntimeError: broken release" in log
