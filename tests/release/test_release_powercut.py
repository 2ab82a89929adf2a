"""An update with the station run as systemd runs it: ``<prefix>/bin/chargerfw-boot run`` over
real release slots, started again whenever it ends, and SIGKILLed (a power cut) at a step.
Every run ends with a station that boots one of the two releases, and the backend receives the
FirmwareStatusNotifications of the whole sequence.

The stand-in for systemd and the prefix: tests/release/update_service.py."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from firmware_servers import HttpFiles, http_server
from ocpp_testcsms import TestCsms
from release_builds import RELEASE_KEY, build_test_release, source_with_version
from update_service import prepare, wait_for

import chargerfw
from chargerfw.release import slot_status
from chargerfw.release.build import build_release
from chargerfw.release.trial import boots_counted, read_trial

pytestmark = pytest.mark.timeout(300)

OLD = chargerfw.__version__
NEW = f"{OLD}.1"
KEY = RELEASE_KEY


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


def statuses(csms: TestCsms) -> list[str]:
    return [m.payload["status"] for m in csms.of("FirmwareStatusNotification")]


def booted_versions(csms: TestCsms) -> list[str]:
    return [m.payload["firmwareVersion"] for m in csms.of("BootNotification")]


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
        service = prepare(tmp_path, csms.url, releases[OLD], KEY.public_key())
        async with service.running():
            await wait_for(lambda: booted_versions(csms) == [OLD], "old release booted", service)
            await update_firmware(csms, f"{files.url}/r.tar")

            async def downloading() -> bool:
                status = await service.status()
                firmware = (status or {}).get("firmware") or {}
                return firmware.get("phase") == "downloading" and (firmware.get("bytes") or 0) > 0

            await wait_for(downloading, "download under way", service)
            service.power_cut()
            await wait_for(lambda: statuses(csms)[-1:] == ["Installed"], "update done", service)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert booted_versions(csms) == [OLD, OLD, NEW]
    resumed = [r for r in files.ranges if r is not None]
    assert len(resumed) == 1 and resumed[0] != "bytes=0-"
    assert slot_status(service.prefix).current.version == NEW
    assert read_trial(service.prefix) is None


async def test_a_cut_while_the_slot_is_built_keeps_the_old_release(tmp_path, releases):
    async with backend({"/r.tar": releases[NEW].read_bytes()}) as (csms, files):
        service = prepare(tmp_path, csms.url, releases[OLD], KEY.public_key())
        slot = service.prefix / "releases" / NEW
        async with service.running():
            await wait_for(lambda: booted_versions(csms) == [OLD], "old release booted", service)
            await update_firmware(csms, f"{files.url}/r.tar")
            await wait_for(slot.exists, "slot being built", service)
            service.power_cut()
            await wait_for(lambda: statuses(csms)[-1:] == ["InstallationFailed"], "update ended", service)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert booted_versions(csms) == [OLD, OLD]
    assert slot_status(service.prefix).current.version == OLD


async def test_a_cut_during_the_trial_then_healthy(tmp_path, releases):
    async with backend({"/r.tar": releases[NEW].read_bytes()}) as (csms, files):
        service = prepare(tmp_path, csms.url, releases[OLD], KEY.public_key())
        async with service.running():
            await wait_for(lambda: booted_versions(csms) == [OLD], "old release booted", service)
            csms.behaviour.boot_status = "Rejected"  # the new release waits for Accepted
            await update_firmware(csms, f"{files.url}/r.tar")
            await wait_for(lambda: NEW in booted_versions(csms), "new release on trial",
                           service)
            service.power_cut()
            await wait_for(lambda: boots_counted(service.prefix) == 2, "second start", service)
            csms.behaviour.boot_status = "Accepted"
            await wait_for(lambda: statuses(csms)[-1:] == ["Installed"], "update done", service)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert slot_status(service.prefix).current.version == NEW
    assert read_trial(service.prefix) is None


async def test_a_release_that_cannot_start_is_rolled_back_by_the_launcher(tmp_path, releases):
    async with backend({"/r.tar": releases["broken"].read_bytes()}) as (csms, files):
        service = prepare(tmp_path, csms.url, releases[OLD], KEY.public_key(),
                          boot_attempts=2)
        async with service.running():
            await wait_for(lambda: booted_versions(csms) == [OLD], "old release booted", service)
            await update_firmware(csms, f"{files.url}/r.tar")
            await wait_for(lambda: statuses(csms)[-1:] == ["InstallationFailed"], "update ended", service)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert booted_versions(csms) == [OLD, OLD]
    status = slot_status(service.prefix)
    assert (status.current.version, status.previous.version) == (OLD, NEW)
    log = service.log_path.read_text()
    assert "did not get healthy in 2 starts" in log
    assert "RuntimeError: broken release" in log
