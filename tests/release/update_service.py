"""Running a station as systemd runs it on a Pi, for update tests: the boot launcher
``<prefix>/bin/chargerfw-boot run --config FILE`` over real release slots, started again whenever
it ends (``Restart=``), and cut (SIGKILL) on demand.

Entry point for an end-to-end update test::

    releases = {v: build_test_release(tmp / v, v, KEY) for v in (OLD, NEW)}   # release_builds
    service = prepare(tmp_path, backend_url, releases[OLD], KEY.public_key())
    async with service.running():
        ...  # UpdateFirmware with the new release's URL from the backend, then wait for
             # FirmwareStatusNotification Installed and a BootNotification of NEW

The slots hold the chargerfw wheel only; the station's dependencies come from this test
environment through PYTHONPATH (its editable chargerfw is a .pth finder, which PYTHONPATH does
not load: ``chargerfw`` itself comes from the slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from runtime_helpers import ctl, dump_toml, sim_station_config

from chargerfw import control
from chargerfw.release import install_release
from chargerfw.release.manifest import public_key_pem

SITE_PACKAGES = sysconfig.get_paths()["purelib"]


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

    async def status(self) -> dict[str, Any] | None:
        """The running station's `chargerfw status` (None while none answers)."""
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


def prepare(tmp_path: Path, url: str, first_release: Path, public_key: Ed25519PublicKey,
            **firmware: Any) -> Service:
    """A prefix with ``first_release`` current (as `make install` leaves it) and a simulated
    station's config, pointed at the backend ``url``, whose [firmware] section names the prefix
    and the public key (``firmware`` overrides its keys)."""
    prefix = tmp_path / "opt"
    install_release(first_release, prefix, public_key, with_dependencies=False)
    pub = tmp_path / "release.pub"
    pub.write_bytes(public_key_pem(public_key))
    config_path, _ = sim_station_config(tmp_path, url)
    section = {"prefix": str(prefix), "public_key": str(pub), "health_check_s": 60,
               **firmware}
    config_path.write_text(config_path.read_text() + dump_toml({"firmware": section}))
    return Service(prefix, config_path, tmp_path)


async def wait_for(predicate: Callable[[], Any], what: str, service: Service,
                   timeout: float = 120) -> None:
    """Until ``predicate`` (plain or async) holds; the service's log in the failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _holds(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s; log:\n{service.log()}")
        await asyncio.sleep(0.05)


async def _holds(predicate: Callable[[], Any]) -> bool:
    result = predicate()
    if asyncio.iscoroutine(result):
        result = await result
    return bool(result)
