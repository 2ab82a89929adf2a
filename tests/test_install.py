"""`make install` staged under DESTDIR: what a Pi gets, without touching this machine's system.

The install runs for real (venv, pip, files) into a temporary root. The commands that would
change the live system are shadowed on PATH by stubs that log and fail, so a call to one shows.
Dependencies come from this test environment (PIP_INSTALL_ARGS=--no-deps plus a .pth) to keep
it fast; pip still reaches PyPI (or its cache) to upgrade itself and for the build backend.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest
from machine_locks import SOURCE_TREE_BUILD, exclusive
from systemd_units import (
    BOOT_LAUNCHER,
    INSTALLED_EXECUTABLE,
    UNIT_NAMES,
    assert_units_verify_clean,
    shipped_units,
)

import chargerfw
from chargerfw.config import known_meter_models
from chargerfw.release import slot_status
from chargerfw.release.trial import boot_script_text

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "/opt/chargerfw"
# Live-system commands install.sh must not run under DESTDIR.
LIVE_COMMANDS = ("groupadd", "useradd", "usermod", "udevadm", "systemctl", "chown", "chgrp")
# Everything a real install (with this test's PREFIXes) would create or change on this machine.
LIVE_PATHS = (
    "/etc/chargerfw", "/opt/chargerfw", "/srv/chargerfw", "/var/lib/chargerfw",
    *(f"/etc/systemd/system/{name}" for name in UNIT_NAMES),
    *(f"/etc/systemd/system/multi-user.target.wants/{name}" for name in UNIT_NAMES),
    "/etc/udev/rules.d/99-chargerfw.rules", "/etc/passwd", "/etc/group",
)

pytestmark = pytest.mark.timeout(180)


@dataclass(frozen=True)
class LiveCommandStubs:
    bin_dir: Path
    log: Path

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@dataclass(frozen=True)
class StagedInstall:
    destdir: Path
    venv: Path
    output: str
    pip_report: dict


def live_state() -> dict[str, list[tuple[str, int, int]] | None]:
    """Each live path's tree as (relative path, mtime, size), or None where it does not exist."""
    state: dict[str, list[tuple[str, int, int]] | None] = {}
    for path in map(Path, LIVE_PATHS):
        if not os.path.lexists(path):
            state[str(path)] = None
            continue
        entries = [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]
        state[str(path)] = [(str(e.relative_to(path)), e.lstat().st_mtime_ns, e.lstat().st_size)
                            for e in entries]
    return state


@pytest.fixture(scope="module")
def live_before() -> dict[str, list[tuple[str, int, int]] | None]:
    return live_state()


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> LiveCommandStubs:
    bin_dir = tmp_path_factory.mktemp("live-stubs")
    log = bin_dir / "calls.log"
    for name in LIVE_COMMANDS:
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 97\n')
        stub.chmod(0o755)
    return LiveCommandStubs(bin_dir, log)


def make_install(stubs: LiveCommandStubs, **variables: str) -> str:
    """Run `make install VAR=value ...` with the live-system commands stubbed; return stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{stubs.bin_dir}:{env['PATH']}"
    with exclusive(SOURCE_TREE_BUILD):  # pip builds the wheel in the tree (build/, egg-info)
        result = subprocess.run(
            ["make", "-s", "-C", str(ROOT), "install",
             *(f"{k}={v}" for k, v in variables.items())],
            capture_output=True, text=True, env=env, timeout=170,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def run_staged(venv: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin/chargerfw"), *args], check=True, capture_output=True,
                          text=True, cwd=venv, env=env).stdout


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory, stubs: LiveCommandStubs,
           live_before: dict) -> StagedInstall:
    destdir = tmp_path_factory.mktemp("destdir")
    report = tmp_path_factory.mktemp("pip") / "report.json"
    output = make_install(stubs, DESTDIR=str(destdir), EXTRAS="", PYTHON=sys.executable,
                          PIP_INSTALL_ARGS=f"--no-deps --report {report}")
    venv = destdir / PREFIX.lstrip("/") / "releases" / chargerfw.__version__
    # The package is the staged copy; its dependencies come from this test environment.
    venv_site = next((venv / "lib").glob("python3*/site-packages"))
    (venv_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return StagedInstall(destdir, venv, output, json.loads(report.read_text()))


def test_staged_venv_runs_the_installed_chargerfw(staged: StagedInstall) -> None:
    assert run_staged(staged.venv, "--version").strip() == f"chargerfw, version {chargerfw.__version__}"
    listed = {entry["model"] for entry in json.loads(run_staged(staged.venv, "meters", "--json"))}
    assert listed == set(known_meter_models())
    where = subprocess.run([str(staged.venv / "bin/python"), "-c", "import chargerfw.hw; print(chargerfw.hw.__file__)"],
                           check=True, capture_output=True, text=True, cwd=staged.venv).stdout
    assert where.startswith(str(staged.venv))


def test_empty_extras_installs_chargerfw_without_an_extra(staged: StagedInstall) -> None:
    (installed,) = staged.pip_report["install"]
    assert installed["metadata"]["name"] == "chargerfw"
    assert installed.get("requested_extras") in (None, [])


def test_units_name_the_real_prefix_and_verify(staged: StagedInstall, tmp_path: Path) -> None:
    units = {name: (staged.destdir / "etc/systemd/system" / name).read_text() for name in UNIT_NAMES}
    for name, unit in units.items():
        executable = BOOT_LAUNCHER if name == "chargerfw.service" else INSTALLED_EXECUTABLE
        assert re.search(rf"^ExecStart={re.escape(executable)} .*run", unit, re.MULTILINE), name
        assert str(staged.destdir) not in unit
        assert unit == (ROOT / "systemd" / name).read_text()
        assert (staged.destdir / "etc/systemd/system" / name).stat().st_mode & 0o777 == 0o644
    assert_units_verify_clean(units, staged.venv / "bin/chargerfw", tmp_path)


def test_the_tree_is_the_first_release_slot_started_through_the_launcher(
        staged: StagedInstall) -> None:
    prefix = staged.destdir / PREFIX.lstrip("/")
    status = slot_status(prefix)
    assert status.current is not None and status.previous is None
    assert (status.current.version, status.current.path) == (chargerfw.__version__, staged.venv)
    assert os.readlink(prefix / "current") == f"releases/{chargerfw.__version__}"
    launcher = prefix / "bin/chargerfw-boot"
    assert launcher.read_text() == boot_script_text() and launcher.stat().st_mode & 0o111
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, env=env,
                          check=True)
    assert done.stdout.strip() == f"chargerfw, version {chargerfw.__version__}"


def test_config_is_the_pi_example_readable_by_its_group_only(staged: StagedInstall) -> None:
    etc = staged.destdir / "etc/chargerfw"
    config = etc / "chargerfw.toml"
    assert config.read_bytes() == (ROOT / "hw/stations/pi-example.toml").read_bytes()
    assert config.stat().st_mode & 0o777 == 0o640
    assert etc.stat().st_mode & 0o777 == 0o750
    assert f"wrote {config}" in staged.output


def test_udev_rules_are_staged(staged: StagedInstall) -> None:
    rules = staged.destdir / "etc/udev/rules.d/99-chargerfw.rules"
    assert rules.read_bytes() == (ROOT / "hw/udev/99-chargerfw.rules").read_bytes()
    assert rules.stat().st_mode & 0o777 == 0o644


def test_live_system_steps_are_announced_not_run(staged: StagedInstall,
                                                 stubs: LiveCommandStubs) -> None:
    assert stubs.calls() == []
    skipped = [line for line in staged.output.splitlines() if line.startswith("DESTDIR set, skipped: ")]
    for step in ("udevadm control --reload", "systemctl daemon-reload"):
        assert any(step in line for line in skipped), staged.output
    # Both units are enabled: the station requires the safety process, which starts at boot too.
    enable = [line for line in skipped if "systemctl enable" in line]
    assert len(enable) == 1, staged.output
    assert set(enable[0].split(": ", 1)[1].split()) >= {"systemctl", "enable", *UNIT_NAMES}
    # Users and groups are only created where missing on this machine; say so when they are.
    if subprocess.run(["id", "chargerfw"], capture_output=True).returncode != 0:
        assert any("useradd" in line and line.rstrip().endswith("(a real install runs this)")
                   for line in skipped), staged.output


def test_prefix_and_default_extras_pass_through_make(tmp_path: Path, stubs: LiveCommandStubs) -> None:
    # EXTRAS unset means the pi extra; a dry run reports what pip would install without building it.
    report = tmp_path / "report.json"
    make_install(stubs, DESTDIR=str(tmp_path / "root"), PREFIX="/srv/chargerfw", PYTHON=sys.executable,
                 PIP_INSTALL_ARGS=f"--no-deps --dry-run --report {report}")
    (planned,) = json.loads(report.read_text())["install"]
    assert planned["metadata"]["name"] == "chargerfw"
    assert planned["requested_extras"] == ["pi"]
    assert (tmp_path / f"root/srv/chargerfw/releases/{chargerfw.__version__}/bin/python").exists()
    for name, shipped in shipped_units().items():
        unit = (tmp_path / "root/etc/systemd/system" / name).read_text()
        assert re.search(r"^ExecStart=/srv/chargerfw/(current/bin/chargerfw|bin/chargerfw-boot) ",
                         unit, re.MULTILINE)
        assert "/opt/chargerfw" not in unit and str(tmp_path) not in unit
        assert unit == shipped.replace("/opt/chargerfw", "/srv/chargerfw")


def test_real_install_refuses_to_run_without_root(stubs: LiveCommandStubs) -> None:
    # Without DESTDIR the script changes the live system, so an ordinary user is turned away
    # before it does anything (the final snapshot check shows nothing changed).
    env = {"PATH": f"{stubs.bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "PYTHON": sys.executable}
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "bash", str(ROOT / "scripts/install.sh")],
        capture_output=True, text=True, env=env, timeout=30,
    )
    assert result.returncode == 1
    assert "must run as root" in result.stderr


def test_second_run_keeps_an_edited_config(staged: StagedInstall, stubs: LiveCommandStubs) -> None:
    config = staged.destdir / "etc/chargerfw/chargerfw.toml"
    edited = config.read_text().replace('id = "CP-0001"', 'id = "CP-4711"')
    assert edited != config.read_text()
    config.write_text(edited)
    config.chmod(0o644)  # as an older install left it: the password readable by everyone
    output = make_install(stubs, DESTDIR=str(staged.destdir), EXTRAS="", PYTHON=sys.executable,
                          PIP_INSTALL_ARGS="--no-deps")
    assert config.read_text() == edited
    assert config.stat().st_mode & 0o777 == 0o640
    assert f"kept the existing {config}" in output
    assert run_staged(staged.venv, "--version").startswith("chargerfw, version ")


def test_nothing_written_outside_destdir(staged: StagedInstall, stubs: LiveCommandStubs,
                                         live_before: dict) -> None:
    # Runs last in this module: covers both installs above.
    assert live_state() == live_before
    assert stubs.calls() == []
    assert sorted(os.listdir(staged.destdir)) == ["etc", "opt"]
