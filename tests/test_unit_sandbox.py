"""Each unit's process as systemd sets it up: start directory, environment, user, system calls.

Everything is read from the unit files, so removing a setting breaks a test. The process runs
as an unprivileged stand-in for the service user (the test runs as root, and there is no
chargerfw user), with the directories systemd makes for the unit staged under a temporary
root and owned by that user.

lgpio makes its notification FIFO (``.lgd-nfyN``) in its working directory when imported: the
directory in ``$LG_WD`` (it changes into it), else the one it starts in. A unit without
WorkingDirectory= starts in /, read-only under ProtectSystem=strict, and the import fails with
``FileNotFoundError: '.lgd-nfy…'``. The real lgpio is imported here.

The system-call filter (SystemCallFilter=, SystemCallErrorNumber=, MemoryDenyWriteExecute=) is
built with libseccomp as systemd builds it (``seccomp_sandbox.py``), and what each process does
(lgpio, scheduling and mlockall for the safety process; serial line settings, TCP and the event
loop for the station) must fare the same with and without it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from systemd_units import (
    UNIT_NAMES,
    UnitFile,
    allowed_system_calls,
    resolve_specifiers,
    shipped_units,
)

STAND_IN_USER = "nobody"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAP_DAC_READ_SEARCH = 2
SANDBOX = Path(__file__).resolve().parent / "seccomp_sandbox.py"
IMPORT_LGPIO = "import lgpio"

# Each operation prints ok or the errno name it failed with. The controls show the sandbox is in
# force: no unit needs setpriority (in @resources) or memory both writable and executable.
PROBE = r'''
import errno, json, sys

def lgpio():
    import lgpio

def sched_setscheduler():  # the call that asks for SCHED_FIFO; SCHED_OTHER needs no privilege
    import os
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

def sched_setparam():
    import os
    os.sched_setparam(0, os.sched_param(0))

def mlockall():  # as chargerfw safety run does it; ENOMEM is RLIMIT_MEMLOCK, not the filter
    import ctypes, ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mlockall(1 | 2) != 0:  # MCL_CURRENT | MCL_FUTURE
        raise OSError(ctypes.get_errno(), "mlockall")

def serial_line():
    import os, serial
    controller, line = os.openpty()
    serial.Serial(os.ttyname(line), 9600, timeout=0).close()

def tcp():
    import socket
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()):
            server.accept()[0].close()

def event_loop():
    import asyncio
    asyncio.run(asyncio.sleep(0))

def setpriority():
    import os
    os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0))

def write_execute_mapping():
    import mmap
    mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC).close()

results = {}
for name in sys.argv[1:]:
    try:
        globals()[name]()
        results[name] = "ok"
    except OSError as exc:
        results[name] = errno.errorcode.get(exc.errno, str(exc))
print(json.dumps(results))
'''
CONTROLS = ("setpriority", "write_execute_mapping")
# What each process does that the sandbox could refuse (mlockall last: it may lock the rest).
PROBED = {
    "chargerfw-safety.service": ["lgpio", "sched_setscheduler", "sched_setparam", *CONTROLS,
                                 "mlockall"],
    "chargerfw.service": ["lgpio", "serial_line", "tcp", "event_loop", *CONTROLS],
}


def holds_capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


class StagedUnit:
    """One unit's process as systemd would start it, with its managed directories under ``root``.

    Paths inside a directory systemd makes for the unit (RuntimeDirectory= and the like) map
    into ``root``, made and owned as systemd makes them; any other path is the host's own, as
    the unit would see it (and read-only there under ProtectSystem=strict).
    """

    def __init__(self, unit: UnitFile, root: Path, user: pwd.struct_passwd) -> None:
        self.unit = unit
        self.root = root
        self.user = user
        self.managed = unit.managed_directories()

    def staged_path(self, path: str) -> Path:
        path = resolve_specifiers(path)
        for directory in self.managed:
            if path == directory or path.startswith(directory + "/"):
                return self.root / path.lstrip("/")
        return Path(path)

    def make_managed_directories(self) -> None:
        for directory, mode in sorted(self.managed.items()):
            staged = self.root / directory.lstrip("/")
            staged.mkdir(parents=True, exist_ok=True)
            os.chown(staged, self.user.pw_uid, self.user.pw_gid)
            staged.chmod(int(mode, 8))

    def start_directory(self) -> Path:
        """WorkingDirectory= ("-" ignores a missing one; unset means / for a system unit)."""
        working = (self.unit.value("WorkingDirectory") or "/").lstrip("-")
        assert not working.startswith("~"), "the service user's home is not staged"
        return self.staged_path(working)

    def environment(self) -> dict[str, str]:
        environment = {"PATH": SYSTEMD_PATH, **self.unit.environment()}
        if "LG_WD" in environment:
            environment["LG_WD"] = str(self.staged_path(environment["LG_WD"]))
        return environment

    def lgpio_directory(self) -> Path:
        """Where lgpio puts its FIFO: $LG_WD (relative to the start directory), else the start."""
        return self.start_directory() / self.environment().get("LG_WD", ".")

    def sandbox_spec(self) -> Path:
        """The unit's system-call filter, for seccomp_sandbox.py (readable by the stand-in)."""
        spec = self.root / "seccomp.json"
        spec.write_text(json.dumps({
            "allow": sorted(allowed_system_calls(self.unit)),
            "errno": self.unit.value("SystemCallErrorNumber") or "EPERM",
            "deny_write_execute": self.unit.value("MemoryDenyWriteExecute") == "yes",
        }))
        spec.chmod(0o644)
        return spec

    def run_python(self, code: str, *args: str,
                   filtered: bool = False) -> subprocess.CompletedProcess[str]:
        """Run this interpreter (and its venv's lgpio) as the stand-in user: no supplementary
        groups, changing into the start directory as that user, as systemd does; ``filtered``
        under the unit's system-call filter."""
        command = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                   "--clear-groups"]
        if holds_capability(CAP_DAC_READ_SEARCH):
            # Lets the stand-in read this interpreter wherever the test machine keeps it (under
            # /root, say); it grants no write access, which is what the import needs.
            command += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
        command += ["env", "-C", str(self.start_directory())]
        if filtered:
            command += [sys.executable, str(SANDBOX), str(self.sandbox_spec()), "--"]
        command += [sys.executable, "-c", code, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env=self.environment())


def without_lgpio_directory_settings(text: str) -> str:
    """The unit as it was before the fix: no WorkingDirectory=, no LG_WD."""
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith("WorkingDirectory=") and "LG_WD=" not in line)


@pytest.fixture(scope="module")
def stand_in() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("runs the process as another user: needs root (as CI has)")
    return pwd.getpwnam(STAND_IN_USER)


@pytest.fixture
def staging_root() -> Iterator[Path]:
    # Not tmp_path: pytest keeps that under a directory only root may enter.
    root = Path(tempfile.mkdtemp(prefix="chargerfw-unit-root-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def test_lgpio_is_installed_for_these_tests() -> None:
    # The real package from the index (the `test` extra), not a double: never skip for lack of it.
    assert importlib.util.find_spec("lgpio") is not None


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_lgpio_imports_as_the_unit_starts_it(name: str, stand_in: pwd.struct_passwd,
                                             staging_root: Path) -> None:
    staged = StagedUnit(UnitFile(shipped_units()[name]), staging_root, stand_in)
    staged.make_managed_directories()
    result = staged.run_python(IMPORT_LGPIO)
    assert result.returncode == 0, result.stderr
    fifos = [p for p in staged.lgpio_directory().glob(".lgd-nfy*") if stat.S_ISFIFO(p.lstat().st_mode)]
    assert fifos, f"no lgpio FIFO in {staged.lgpio_directory()}"


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_without_the_units_directory_settings_lgpio_fails_as_on_a_pi(
        name: str, stand_in: pwd.struct_passwd, staging_root: Path) -> None:
    # What the unit did before: started in /, which the service user cannot write.
    unit = UnitFile(without_lgpio_directory_settings(shipped_units()[name]))
    staged = StagedUnit(unit, staging_root, stand_in)
    staged.make_managed_directories()
    assert staged.start_directory() == Path("/") and "LG_WD" not in staged.environment()
    result = staged.run_python(IMPORT_LGPIO)
    assert result.returncode != 0
    assert "FileNotFoundError" in result.stderr and ".lgd-nfy" in result.stderr, result.stderr


def test_units_do_not_share_an_lgpio_directory(staging_root: Path) -> None:
    # lgpio replaces a FIFO of the same name: two processes in one directory would swap events.
    user = pwd.getpwnam(STAND_IN_USER)
    directories = {StagedUnit(UnitFile(text), staging_root, user).lgpio_directory().resolve()
                   for text in shipped_units().values()}
    assert len(directories) == len(UNIT_NAMES)


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_system_call_filter_refuses_nothing_the_process_does(
        name: str, stand_in: pwd.struct_passwd, staging_root: Path) -> None:
    staged = StagedUnit(UnitFile(shipped_units()[name]), staging_root, stand_in)
    staged.make_managed_directories()
    outcomes = {}
    for filtered in (False, True):
        result = staged.run_python(PROBE, *PROBED[name], filtered=filtered)
        assert result.returncode == 0, result.stderr
        outcomes[filtered] = json.loads(result.stdout)
    bare, sandboxed = outcomes[False], outcomes[True]
    # The controls show the filters are in force: allowed bare, refused in the sandbox.
    for control in CONTROLS:
        assert bare.pop(control) == "ok" and sandboxed.pop(control) == "EPERM", (control, outcomes)
    # Without the filter nothing fails with EPERM (else the comparison would prove nothing).
    assert "EPERM" not in bare.values(), bare
    assert sandboxed == bare
