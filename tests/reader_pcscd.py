"""A real pcscd with the vsmartcard vpcd reader driver, for the PC/SC reader tests.

pcsc-lite 1.9.9 has one fixed client socket (/run/pcscd/pcscd.comm), so only one pcscd can
run on the machine: tests that run one take :func:`exclusive_pcscd` (a lock file, so parallel
workers and other test runs wait their turn), refuse to start if another pcscd is there anyway,
and stop only their own (by pid). The vpcd port comes from a reader.conf written into a
temporary folder (``pcscd -c``), so the tests use a free port instead of the fixed 35963.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from machine_locks import exclusive
from smartcard import scard

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD_PID_FILE = Path("/run/pcscd/pcscd.pid")
READER_NAME = "Virtual PCD 00 00"  # vpcd creates two slots: port and port + 1


@contextlib.contextmanager
def exclusive_pcscd() -> Iterator[None]:
    """The machine's one pcscd is ours until the block ends (nested blocks share the hold)."""
    with exclusive("pcscd"):
        yield


@dataclass(frozen=True)
class VpcdStack:
    pid: int
    port: int  # where a virtual card connects to be "inserted" into READER_NAME
    reader_name: str = READER_NAME


def _free_port_pair() -> int:
    """Two neighbouring free ports below the kernel's ephemeral range: vpcd binds its port only
    when pcscd loads it, and a port the kernel could hand to any outgoing connection meanwhile
    (other tests run in parallel) would leave vpcd unable to listen."""
    low, _high = (int(v) for v in
                  Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    candidates = list(range(max(1024, low - 12_000), low - 2, 2))
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free neighbouring TCP ports below the ephemeral range")


def _other_pcscd_running() -> int | None:
    try:
        pid = int(PCSCD_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def _readers() -> list[str]:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return []
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        return list(readers) if hresult == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


@contextlib.contextmanager
def pcscd_with_vpcd(workdir: Path, *, port: int | None = None,
                    ready_timeout_s: float = 10.0) -> Iterator[VpcdStack]:
    """Run ``pcscd --foreground`` with only the vpcd reader until the block ends."""
    with exclusive_pcscd():
        yield from _pcscd_with_vpcd(workdir, port=port, ready_timeout_s=ready_timeout_s)


def _pcscd_with_vpcd(workdir: Path, *, port: int | None,
                     ready_timeout_s: float) -> Iterator[VpcdStack]:
    pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
    if not os.path.exists(pcscd) or not VPCD_DRIVER.exists():
        raise RuntimeError("pcscd and vsmartcard-vpcd are needed (apt-get install pcscd vsmartcard-vpcd)")
    other = _other_pcscd_running()
    if other is not None:
        raise RuntimeError(f"another pcscd (pid {other}) is running; the tests need their own")
    port = port or _free_port_pair()
    conf_dir = workdir / "reader.conf.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "vpcd").write_text(
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME   /dev/null:{port}\n"
        f"LIBPATH      {VPCD_DRIVER}\n"
        f"CHANNELID    {port}\n"
    )
    log = open(workdir / "pcscd.log", "wb")
    proc = subprocess.Popen([pcscd, "--foreground", "--config", str(conf_dir)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while READER_NAME not in _readers():
            if proc.poll() is not None:
                raise RuntimeError(f"pcscd exited with {proc.returncode}: "
                                   f"{(workdir / 'pcscd.log').read_text(errors='replace')[-500:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("pcscd did not list the vpcd reader in time")
            time.sleep(0.05)
        yield VpcdStack(pid=proc.pid, port=port)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()
