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
from machine_locks import exclusive
from setuptools import find_packages
from systemd_units import assert_unit_verifies_clean

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
    with exclusive("source-tree-build"):  # setuptools builds in the tree (build/, egg-info)
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


def test_systemd_unit_verifies_clean(tmp_path: Path) -> None:
    # `make install` rewrites the venv path; verify the unit as installed, pointing at this venv.
    unit = (ROOT / "systemd/chargerfw.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit
    assert_unit_verifies_clean(unit, Path(sys.executable).parent / "chargerfw", tmp_path)
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectory=chargerfw",
                      "SupplementaryGroups=gpio dialout i2c"):
        assert hardening in unit
