"""`chargerfw support-bundle`: one tar.gz with what support asks for (config with secrets
redacted, recent logs, fault history, OCPP frame log, outbox, transactions, OCPP keys,
versions, the service's status and the selftest result)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from chargerfw import __version__
from chargerfw.cli import config_option
from chargerfw.cli.checks import overall_ok
from chargerfw.cli.common import (
    EXIT_USAGE,
    Station,
    echo_json,
    fail,
    fault_dict,
    iso,
    json_option,
    record_dict,
)
from chargerfw.cli.selftest import run_selftest
from chargerfw.config import ConfigError, load_config
from chargerfw.control.api import ControlError, StatusRequest, encode_reply
from chargerfw.control.client import ControlClient, ControlUnavailable, control_socket_path
from chargerfw.ocpp.connection import redact_frame
from chargerfw.redact import redact, redact_toml_text


@dataclass
class BundleFile:
    name: str
    content: bytes

    @classmethod
    def json(cls, name: str, data: Any) -> BundleFile:
        return cls(name, (json.dumps(data, indent=2, default=str) + "\n").encode())

    @classmethod
    def text(cls, name: str, text: str) -> BundleFile:
        return cls(name, text.encode())


@dataclass
class Bundle:
    """The support bundle's files, written as one tar.gz under a top folder."""

    folder: str
    files: list[BundleFile] = field(default_factory=list)

    def add(self, item: BundleFile) -> None:
        self.files.append(item)

    def write(self, path: Path) -> None:
        # Written under a temporary name and renamed: a half-written bundle never looks complete.
        partial = path.with_name(path.name + ".partial")
        now = time.time()
        with tarfile.open(partial, "w:gz") as tar:
            for item in self.files:
                info = tarfile.TarInfo(f"{self.folder}/{item.name}")
                info.size = len(item.content)
                info.mtime = int(now)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(item.content))
        os.replace(partial, path)


def _versions() -> dict[str, Any]:
    packages = {}
    for name in ("chargerfw", "ocpp", "websockets", "pymodbus", "pyscard", "msgspec", "click",
                 "smbus2", "pyserial", "RPi.GPIO", "rpi-lgpio", "tomlkit"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    os_release = {}
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            if key in ("PRETTY_NAME", "VERSION_ID", "ID"):
                os_release[key] = value.strip('"')
    model = None
    with contextlib.suppress(OSError):
        model = Path("/proc/device-tree/model").read_text().rstrip("\x00")
    return {"firmware": __version__, "python": sys.version, "platform": platform.platform(),
            "machine": platform.machine(), "os": os_release, "board": model,
            "packages": packages}


# Both units: a fault the safety process raised is in its own log, not the station's.
SERVICE_UNITS = ("chargerfw-safety", "chargerfw")


def _recent_logs(lines: int = 2000) -> str:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return "journalctl is not available on this system: no service logs collected.\n"
    units = [arg for unit in SERVICE_UNITS for arg in ("-u", unit)]
    try:
        proc = subprocess.run([journalctl, *units, "-n", str(lines), "--no-pager",
                               "-o", "short-iso"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"journalctl failed: {exc}\n"
    names = " ".join(units)
    if proc.returncode != 0:
        return f"journalctl {names} exited {proc.returncode}: {proc.stderr.strip()}\n"
    return proc.stdout or f"journalctl returned no lines for {', '.join(SERVICE_UNITS)}.\n"


def _service_status() -> Any:
    """The running service's status (secrets redacted), or that it does not answer."""
    try:
        status = ControlClient(control_socket_path()).request(StatusRequest())
    except (ControlUnavailable, ControlError):
        return {"service": "not running"}
    return redact(encode_reply(StatusRequest, status))


def build_bundle(config_path: str) -> tuple[Bundle, bool]:
    """The bundle's files, and whether the selftest passed."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    bundle = Bundle(f"chargerfw-support-{stamp}")
    try:
        raw = Path(config_path).read_text(encoding="utf-8")
        try:
            bundle.add(BundleFile.text("config.toml", redact_toml_text(raw)))
        except Exception as exc:  # not TOML: never copy an unparsed file (it may hold a secret)
            bundle.add(BundleFile.text("config.toml.txt",
                                       f"# {config_path} is not valid TOML ({exc}); not copied\n"))
    except OSError as exc:
        bundle.add(BundleFile.text("config.toml.txt", f"# cannot read {config_path}: {exc}\n"))
    results = run_selftest(config_path)
    ok = overall_ok(results)
    bundle.add(BundleFile.json("selftest.json",
                               {"passed": ok, "checks": [r.as_dict() for r in results]}))
    bundle.add(BundleFile.json("versions.json", _versions()))
    bundle.add(BundleFile.text("logs.txt", _recent_logs()))
    bundle.add(BundleFile.json("status.json", _service_status()))
    try:
        config = load_config(config_path)
    except ConfigError:
        config = None
    store = Station(config, Path(config_path)).open_store() if config else None
    if store is None:
        bundle.add(BundleFile.text("store.txt", "no store available (config invalid or no "
                                   "database yet)\n"))
    else:
        try:
            bundle.add(BundleFile.json("faults.json",
                                       [fault_dict(f) for f in store.faults(limit=1000)]))
            bundle.add(BundleFile.json("ocpp-frames.json", [
                {"seq": f.seq, "at": iso(f.at), "direction": f.direction,
                 "frame": redact_frame(f.frame)} for f in store.frame_log()]))
            outbox = store.outbox_all(limit=1000)
            bundle.add(BundleFile.json("outbox.json", {
                "pending": sum(1 for m in outbox if m.state == "pending"),
                "dead": sum(1 for m in outbox if m.state == "dead"),
                "delivered_recent": sum(1 for m in outbox if m.state == "delivered"),
                "undelivered": [redact(record_dict(m, ("created_at", "next_attempt_at")))
                                for m in outbox if m.state != "delivered"],
            }))
            bundle.add(BundleFile.json("transactions.json", [
                record_dict(t, ("started_at", "stopped_at", "last_meter_at"))
                for t in store.transactions(limit=100)]))
            keys = {k: ("***" if k == "AuthorizationKey" else v)
                    for k, v in store.config_all().items()}
            bundle.add(BundleFile.json("ocpp-keys.json", keys))
        finally:
            store.close()
    return bundle, ok


@click.command("support-bundle")
@config_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="archive to write [default: ./chargerfw-support-<time>.tar.gz]")
@json_option
def support_bundle_command(config_path: str, output: str | None, as_json: bool) -> None:
    """One tar.gz with config (secrets redacted), recent logs, fault history, OCPP frame log,
    outbox summary, versions and the selftest result: send it to support."""
    bundle, ok = build_bundle(config_path)
    path = Path(output) if output else Path(f"{bundle.folder}.tar.gz")
    try:
        bundle.write(path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_USAGE)
    if as_json:
        echo_json({"path": str(path), "files": [f.name for f in bundle.files],
                   "selftest_passed": ok})
    else:
        click.echo(f"wrote {path} ({path.stat().st_size} bytes, {len(bundle.files)} files); "
                   f"selftest {'passed' if ok else 'FAILED'}")
