"""The support bundle: one tar.gz with what support asks for (config with secrets redacted,
recent logs, fault history, OCPP frame log, outbox, transactions, OCPP keys, security log,
versions, the service's status). One builder for both ways it is made: the technician's
``chargerfw support-bundle`` (which adds the selftest) and the running service answering
GetDiagnostics / GetLog.

Every part that leaves the charger is redacted with :mod:`chargerfw.redact` (the journal
included). A time window (``since``/``until``, Unix times) limits the parts that carry times:
the journal, the fault history, the frame log, the transactions and the security log.
"""

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
from typing import TYPE_CHECKING, Any

import msgspec

from chargerfw import __version__
from chargerfw.control.records import fault_dict, iso, record_dict
from chargerfw.ocppj.frames import redact_frame
from chargerfw.redact import redact, redact_text, redact_toml_text

if TYPE_CHECKING:
    from chargerfw.config import StationConfig
    from chargerfw.store import Store

# Both units: a fault the safety process raised is in its own log, not the station's.
SERVICE_UNITS = ("chargerfw-safety", "chargerfw")
JOURNAL_LINES = 2000


@dataclass(frozen=True)
class TimeWindow:
    """What a bundle covers; None = open on that side."""

    since: float | None = None
    until: float | None = None

    def holds(self, at: float | None) -> bool:
        return at is not None and (self.since is None or at >= self.since) and \
            (self.until is None or at <= self.until)

    def overlaps(self, start: float, end: float | None) -> bool:
        """Whether [start, end] (end None = still going) meets the window."""
        return (self.until is None or start <= self.until) and \
            (self.since is None or end is None or end >= self.since)

    def as_dict(self) -> dict[str, str | None]:
        return {"since": iso(self.since), "until": iso(self.until)}


EVERYTHING = TimeWindow()


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


def bundle_folder(prefix: str = "chargerfw-support") -> str:
    return f"{prefix}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def versions() -> dict[str, Any]:
    packages = {}
    for name in ("chargerfw", "ocpp", "websockets", "pymodbus", "pyscard", "msgspec", "click",
                 "smbus2", "pyserial", "RPi.GPIO", "rpi-lgpio", "tomlkit", "httpx"):
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


def recent_logs(window: TimeWindow = EVERYTHING, lines: int = JOURNAL_LINES) -> str:
    """Both service units' journal (the newest ``lines`` within ``window``), redacted."""
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return "journalctl is not available on this system: no service logs collected.\n"
    units = [arg for unit in SERVICE_UNITS for arg in ("-u", unit)]
    limits = [*(["--since", f"@{int(window.since)}"] if window.since is not None else []),
              *(["--until", f"@{int(window.until) + 1}"] if window.until is not None else [])]
    try:
        proc = subprocess.run([journalctl, *units, *limits, "-n", str(lines), "--no-pager",
                               "-o", "short-iso"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"journalctl failed: {exc}\n"
    names = " ".join(units)
    if proc.returncode != 0:
        return redact_text(f"journalctl {names} exited {proc.returncode}: "
                           f"{proc.stderr.strip()}\n")
    return redact_text(proc.stdout) if proc.stdout else \
        f"journalctl returned no lines for {', '.join(SERVICE_UNITS)}.\n"


def config_file(config_path: str | Path) -> BundleFile:
    """The station file with secret values replaced; a file that is not TOML is not copied
    (it may hold a secret where the redaction cannot find it)."""
    try:
        raw = Path(config_path).read_text(encoding="utf-8")
    except OSError as exc:
        return BundleFile.text("config.toml.txt", f"# cannot read {config_path}: {exc}\n")
    try:
        return BundleFile.text("config.toml", redact_toml_text(raw))
    except Exception as exc:
        return BundleFile.text("config.toml.txt",
                               f"# {config_path} is not valid TOML ({exc}); not copied\n")


def running_config_file(config: StationConfig) -> BundleFile:
    """The config the service runs with, secrets redacted."""
    return BundleFile.json("config.json", redact(msgspec.to_builtins(config, enc_hook=str)))


def store_files(store: Store, window: TimeWindow = EVERYTHING) -> list[BundleFile]:
    """What the store holds for support: faults, frames, outbox, transactions, OCPP keys and
    the security log, limited to ``window`` where they carry times."""
    outbox = store.outbox_all(limit=1000)
    return [
        BundleFile.json("faults.json", [
            fault_dict(f) for f in store.faults(limit=1000)
            if window.overlaps(f.raised_at, f.cleared_at)]),
        BundleFile.json("ocpp-frames.json", [
            {"seq": f.seq, "at": iso(f.at), "direction": f.direction,
             "frame": redact_frame(f.frame)} for f in store.frame_log() if window.holds(f.at)]),
        BundleFile.json("outbox.json", {
            "pending": sum(1 for m in outbox if m.state == "pending"),
            "dead": sum(1 for m in outbox if m.state == "dead"),
            "delivered_recent": sum(1 for m in outbox if m.state == "delivered"),
            "undelivered": [redact(record_dict(m, ("created_at", "next_attempt_at")))
                            for m in outbox if m.state != "delivered"],
        }),
        BundleFile.json("transactions.json", [
            record_dict(t, ("started_at", "stopped_at", "last_meter_at"))
            for t in store.transactions(limit=100) if window.overlaps(t.started_at, t.stopped_at)]),
        BundleFile.json("ocpp-keys.json", redact(store.config_all())),
        BundleFile.json("security-log.json", [
            record_dict(e, ("at",)) for e in store.security_events(window.since, window.until)]),
    ]


def service_bundle(config: StationConfig, store: Store, status: Any,
                   window: TimeWindow = EVERYTHING) -> Bundle:
    """The bundle the running service uploads for GetDiagnostics: its config, versions, the
    journal, its own status and the store, within ``window``. ``status`` is redacted here."""
    bundle = Bundle(bundle_folder(f"{config.station.id}-diagnostics"))
    bundle.add(BundleFile.json("window.json", window.as_dict()))
    bundle.add(running_config_file(config))
    bundle.add(BundleFile.json("versions.json", versions()))
    bundle.add(BundleFile.text("logs.txt", recent_logs(window)))
    bundle.add(BundleFile.json("status.json", redact(status)))
    for item in store_files(store, window):
        bundle.add(item)
    return bundle


def security_log_text(store: Store, window: TimeWindow = EVERYTHING) -> str:
    """The security log as text, one event a line: time, type, technical information."""
    lines = [f"{iso(e.at)} {e.type}" + (f" {redact_text(e.tech_info)}" if e.tech_info else "")
             for e in store.security_events(window.since, window.until)]
    return "\n".join(lines) + "\n" if lines else "no security events in this period\n"
