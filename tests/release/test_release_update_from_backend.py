"""The whole update chain on the bundled backend: a release built from the tree is published on
the backend's file server, `chargerfw csms cp firmware update` sends the station a one-time URL,
and the station (run as systemd runs it, over real release slots) downloads it, verifies it,
installs it, restarts through the boot launcher and boots as the new version, while the
backend records every FirmwareStatusNotification."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from csms_doubles import add_test_charger, csms_running
from release_builds import RELEASE_KEY, build_test_release
from update_service import prepare, wait_for

import chargerfw
from chargerfw.cli import main
from chargerfw.release import slot_status

pytestmark = pytest.mark.timeout(300)

OLD = chargerfw.__version__
NEW = f"{OLD}.1"
KEY = RELEASE_KEY


def _csms(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", *args])
    # The backend in this process logs to the same stdout.
    return result.exit_code, "".join(line for line in result.output.splitlines(keepends=True)
                                     if not line.startswith("level="))


async def test_a_release_published_on_the_backend_is_installed_and_boots(tmp_path: Path
                                                                         ) -> None:
    old = build_test_release(tmp_path / "build-old", OLD, KEY)
    new = build_test_release(tmp_path / "build-new", NEW, KEY)
    db, data_dir = str(tmp_path / "csms.sqlite3"), tmp_path / "files"
    code, out = await asyncio.to_thread(_csms, "firmware", "publish", str(new), "--db", db,
                                        "--data-dir", str(data_dir))
    assert code == 0, out

    async with csms_running(db, data_dir=str(data_dir), operator_command_poll_s=0.1) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        station = tmp_path / "station"
        station.mkdir()
        service = prepare(station, csms.ocpp_url, old, KEY.public_key())

        def booted_as() -> str | None:
            point = csms.store.get_charge_point("CP1")
            return None if point is None else point["firmware_version"]

        async with service.running():
            await wait_for(lambda: booted_as() == OLD,
                           "the old release connected", service)
            code, out = await asyncio.to_thread(
                _csms, "cp", "firmware", "update", "CP1", NEW, "--follow",
                "--follow-timeout", "200", "--db", db)
            assert code == 0, out + service.log()
            lines = out.splitlines()
            assert lines[0] == "CP1: Accepted: the charger will download the firmware"
            assert [line.split()[1] for line in lines[1:]] == [
                "Downloading", "Downloaded", "Installing", "Installed"]
            await wait_for(lambda: booted_as() == NEW, "a BootNotification of the new release",
                           service)

        firmware = [row["status"] for row in csms.store.file_statuses("CP1", "firmware")]
        assert firmware[:4] == ["Downloading", "Downloaded", "Installing", "Installed"]
        status = slot_status(service.prefix)
        assert status.current is not None and status.current.version == NEW
        assert status.previous is not None and status.previous.version == OLD
        # Restarted once through the launcher, into the new slot.
        assert service.starts >= 2
