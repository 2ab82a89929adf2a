"""The package as a user gets it: a wheel that carries hw/ data, the console script, the unit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from machine_locks import SOURCE_TREE_BUILD, exclusive
from setuptools import find_packages
from systemd_units import (
    INSTALLED_EXECUTABLE,
    UNIT_NAMES,
    UnitFile,
    assert_units_exposure_at_most,
    assert_units_verify_clean,
    shipped_units,
)

from chargerfw.config import known_meter_models

ROOT = Path(__file__).resolve().parents[1]


def declared_packages() -> list[str]:
    import configparser

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return [p.strip() for p in parser["options"]["packages"].split() if p.strip()]


def test_every_package_directory_is_declared() -> None:
    # setup.cfg lists packages explicitly (hw/ is mapped to chargerfw.hw); a new folder must be added.
    found = set(find_packages(str(ROOT), include=["chargerfw", "chargerfw.*"])) | {"chargerfw.hw"}
    assert found == set(declared_packages())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    with exclusive(SOURCE_TREE_BUILD):  # setuptools builds in the tree (build/, egg-info)
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
             str(ROOT)],
            check=True, capture_output=True, cwd=ROOT,
        )
    (built,) = out.glob("chargerfw-*.whl")
    return built


def test_wheel_ships_hardware_data_and_unit_free_of_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for model in known_meter_models():
        assert f"chargerfw/hw/meters/{model}.toml" in names
    assert "chargerfw/hw/stations/sim.toml" in names
    assert not any(n.startswith("tests/") for n in names)


def test_wheel_in_fresh_venv_lists_meter_models(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Dependencies come from this test environment (no network needed); the package itself
    # comes only from the wheel.
    site = Path(sysconfig.get_paths()["purelib"])
    venv_site = next((venv / "lib").glob("python3*/site-packages"))
    (venv_site / "deps.pth").write_text(str(site) + "\n")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps", str(wheel)], check=True, env=env)
    result = subprocess.run(
        [str(venv / "bin/chargerfw"), "meters", "--json"], check=True, capture_output=True,
        text=True, cwd=tmp_path, env={k: v for k, v in env.items() if k != "PYTHONPATH"},
    )
    listed = {entry["model"] for entry in json.loads(result.stdout)}
    assert listed == set(known_meter_models())
    # And it must be the wheel's copy, not this source tree.
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import chargerfw.hw, sys; print(chargerfw.hw.__file__)"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout
    assert where.startswith(str(venv))


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "chargerfw", "--version"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("chargerfw, version ")


def test_systemd_units_verify_clean(tmp_path: Path) -> None:
    # `make install` rewrites the prefix; verify the units as installed, pointing at this venv.
    units = shipped_units()
    for text in units.values():
        assert "Type=notify" in text and "WatchdogSec=" in text
        for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=chargerfw"):
            assert hardening in text
    assert_units_verify_clean(units, Path(sys.executable).parent / "chargerfw", tmp_path)
    assert "SupplementaryGroups=gpio dialout i2c" in units["chargerfw.service"]


def test_systemd_units_expose_little(tmp_path: Path) -> None:
    exposures = assert_units_exposure_at_most(
        shipped_units(), Path(sys.executable).parent / "chargerfw", tmp_path)
    assert set(exposures) == set(UNIT_NAMES)


def test_station_unit_requires_the_safety_unit_not_the_reverse() -> None:
    station, safety = UnitFile(shipped_units()["chargerfw.service"]), UnitFile(
        shipped_units()["chargerfw-safety.service"])
    # Requires=: stopping or restarting the safety unit stops or restarts the station.
    assert "chargerfw-safety.service" in " ".join(station.values("Requires", "Unit")).split()
    assert "chargerfw-safety.service" in " ".join(station.values("After", "Unit")).split()
    # Nothing carries a station stop, restart or crash over to the safety unit: it keeps running.
    for key in ("Requires", "Requisite", "BindsTo", "PartOf", "StopPropagatedFrom", "Conflicts",
                "After"):
        assert "chargerfw.service" not in " ".join(safety.values(key, "Unit")).split(), key
    for key in ("PropagatesStopTo", "Conflicts"):
        assert "chargerfw-safety.service" not in " ".join(station.values(key, "Unit")).split(), key


def test_safety_unit_runs_real_time_without_network_serial_or_pcsc() -> None:
    safety = UnitFile(shipped_units()["chargerfw-safety.service"])
    assert safety.value("ExecStart") == (
        f"{INSTALLED_EXECUTABLE} safety run --config /etc/chargerfw/chargerfw.toml")
    assert safety.value("CPUSchedulingPolicy") == "fifo"
    assert 1 <= int(safety.value("CPUSchedulingPriority") or 0) <= 99
    assert safety.value("RestrictRealtime") in (None, "no")
    assert safety.value("LimitMEMLOCK") is not None
    assert safety.value("PrivateNetwork") == "yes"
    assert safety.value("IPAddressDeny") == "any"
    assert safety.values("RestrictAddressFamilies") == ["AF_UNIX"]
    assert safety.value("SupplementaryGroups") == "gpio i2c"
    devices = " ".join(safety.values("DeviceAllow"))
    assert "char-gpiochip" in devices and "char-i2c" in devices
    assert "tty" not in devices and "usb" not in devices
    assert not any("pcscd" in path for key in ("ReadWritePaths", "BindPaths")
                   for path in safety.values(key))


def test_station_unit_reaches_usb_cdc_serial_adapters() -> None:
    station = UnitFile(shipped_units()["chargerfw.service"])
    devices = {line.split()[0] for line in station.values("DeviceAllow")}
    assert {"char-gpiochip", "char-i2c", "char-ttyUSB", "char-ttyACM", "char-ttyAMA",
            "char-ttyS", "char-usb_device"} <= devices


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_paths_it_does_not_create_are_optional(name: str) -> None:
    # A listed path that is missing fails the namespace set-up (status 226/NAMESPACE) unless
    # it carries "-"; the directories systemd makes for the unit always exist.
    unit = UnitFile(shipped_units()[name])
    managed = unit.managed_directories()
    for key in ("ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths",
                "NoExecPaths"):
        for line in unit.values(key):
            for path in line.split():
                assert path.startswith("-") or path.lstrip("+") in managed, (key, path)


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_filters_system_calls_from_the_system_service_set(name: str) -> None:
    filters = UnitFile(shipped_units()[name]).values("SystemCallFilter")
    # The first entry decides: an allow list, starting from what ordinary services need.
    assert filters[0] == "@system-service"
    assert any(f.startswith("~") and "@privileged" in f[1:].split() for f in filters)
