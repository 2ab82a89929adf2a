"""A signed update on the bundled backend: a release built from the tree is published with the
manufacturer's signature (`csms firmware publish --signing-certificate --sign-with`),
`csms cp firmware update --signed` sends SignedUpdateFirmware, and the station (run as systemd
runs it, over real release slots, with the manufacturer's root installed) checks the signing
certificate, downloads, verifies the signature, installs, restarts through the boot launcher
and boots as the new version, while the backend records every SignedFirmwareStatusNotification
with the request's id. A file that is not what was signed is refused: InvalidSignature, and the
station stays on the old version."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest
from cert_factory import CODE_SIGNING, issue
from click.testing import CliRunner
from csms_doubles import add_test_charger, csms_running
from release_builds import RELEASE_KEY, build_test_release
from runtime_helpers import dump_toml
from update_service import Service, prepare, wait_for

import chargerfw
from chargerfw.cli import main
from chargerfw.release import slot_status

pytestmark = pytest.mark.timeout(300)

OLD = chargerfw.__version__
NEW = f"{OLD}.1"
KEY = RELEASE_KEY
ROOT = issue("Manufacturer Root", ca=True, organization="Test Manufacturer")
SIGNER = issue("Firmware Signing", issuer=ROOT, eku=[CODE_SIGNING],
               organization="Test Manufacturer")


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    build = tmp_path_factory.mktemp("build")
    return {version: build_test_release(build / version, version, KEY)
            for version in (OLD, NEW)}


def _csms(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", *args])
    # The backend in this process logs to the same stdout.
    return result.exit_code, "".join(line for line in result.output.splitlines(keepends=True)
                                     if not line.startswith("level="))


async def publish_signed(tmp_path: Path, release: Path, db: str, data_dir: Path) -> None:
    certificate, key = SIGNER.write(tmp_path / "manufacturer", "signer")
    code, out = await asyncio.to_thread(
        _csms, "firmware", "publish", str(release), "--signing-certificate", str(certificate),
        "--sign-with", str(key), "--db", db, "--data-dir", str(data_dir))
    assert code == 0, out
    assert out.startswith(f"published {NEW} signed as ")


def station_with_roots(tmp_path: Path, url: str, first_release: Path) -> Service:
    station = tmp_path / "station"
    station.mkdir()
    service = prepare(station, url, first_release, KEY.public_key())
    certificates = station / "certs"
    (certificates / "manufacturer").mkdir(parents=True)
    (certificates / "manufacturer" / "root.pem").write_text(ROOT.pem)
    raw = tomllib.loads(service.config_path.read_text())
    raw.setdefault("security", {})["certificates_dir"] = str(certificates)
    service.config_path.write_text(dump_toml(raw))
    return service


async def test_a_signed_release_is_verified_installed_and_boots(tmp_path: Path,
                                                                releases: dict[str, Path]
                                                                ) -> None:
    db, data_dir = str(tmp_path / "csms.sqlite3"), tmp_path / "files"
    await publish_signed(tmp_path, releases[NEW], db, data_dir)

    async with csms_running(db, data_dir=str(data_dir), operator_command_poll_s=0.1) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        service = station_with_roots(tmp_path, csms.ocpp_url, releases[OLD])

        def booted_as() -> str | None:
            point = csms.store.get_charge_point("CP1")
            return None if point is None else point["firmware_version"]

        async with service.running():
            await wait_for(lambda: booted_as() == OLD, "the old release connected", service)
            code, out = await asyncio.to_thread(
                _csms, "cp", "firmware", "update", "CP1", NEW, "--signed", "--follow",
                "--follow-timeout", "200", "--db", db)
            assert code == 0, out + service.log()
            lines = out.splitlines()
            assert lines[0] == "CP1: Accepted: the charger will download the firmware"
            assert [line.split()[1] for line in lines[1:]] == [
                "Downloading", "Downloaded", "SignatureVerified", "Installing",
                "InstallRebooting", "Installed"]
            await wait_for(lambda: booted_as() == NEW, "a BootNotification of the new release",
                           service)
            await wait_for(lambda: [r["status"] for r in csms.store.file_statuses(
                "CP1", "signed_firmware")][-1:] == ["Installed"], "Installed stored", service)

        signed = csms.store.file_statuses("CP1", "signed_firmware")
        assert [row["status"] for row in signed] == [
            "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting",
            "Installed"]
        assert len({row["request_id"] for row in signed}) == 1  # the one request's id
        assert csms.store.file_statuses("CP1", "firmware") == []
        status = slot_status(service.prefix)
        assert status.current is not None and status.current.version == NEW
        assert status.previous is not None and status.previous.version == OLD
        assert service.starts >= 2


async def test_a_file_that_is_not_what_was_signed_is_refused(tmp_path: Path,
                                                             releases: dict[str, Path]
                                                             ) -> None:
    db, data_dir = str(tmp_path / "csms.sqlite3"), tmp_path / "files"
    await publish_signed(tmp_path, releases[NEW], db, data_dir)
    # The published file changes after it was signed: the same release with bytes appended
    # is still a release whose own checks pass; only the signature tells.
    [published] = (data_dir / "firmware").iterdir()
    published.write_bytes(published.read_bytes() + b"\0" * 10240)

    async with csms_running(db, data_dir=str(data_dir), operator_command_poll_s=0.1) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        service = station_with_roots(tmp_path, csms.ocpp_url, releases[OLD])
        async with service.running():
            await wait_for(lambda: csms.store.get_charge_point("CP1") is not None
                           and csms.store.get_charge_point("CP1")["firmware_version"] == OLD,
                           "the old release connected", service)
            code, out = await asyncio.to_thread(
                _csms, "cp", "firmware", "update", "CP1", NEW, "--signed", "--follow",
                "--follow-timeout", "200", "--db", db)
            assert code == 1, out + service.log()
            assert [line.split()[1] for line in out.splitlines()[1:]] == [
                "Downloading", "Downloaded", "InvalidSignature"]
            await wait_for(lambda: [r["status"] for r in csms.store.file_statuses(
                "CP1", "signed_firmware")][-1:] == ["InvalidSignature"], "the refusal stored",
                service)
        assert service.starts == 1  # never restarted
        status_of_slots = slot_status(service.prefix)
        assert status_of_slots.current is not None and status_of_slots.current.version == OLD
        assert not (service.prefix / "releases" / NEW).exists()
