"""chargerfw's systemd units as installed: read their settings, verify them, measure their exposure.

The units in systemd/ name the current release under /opt/chargerfw (the station through the
boot launcher); install.sh rewrites the prefix for another PREFIX, and the tests point them at
an existing executable (systemd checks ExecStart exists).
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The executables the units in systemd/ name; install.sh rewrites the prefix for another PREFIX.
INSTALLED_EXECUTABLE = "/opt/chargerfw/current/bin/chargerfw"
BOOT_LAUNCHER = "/opt/chargerfw/bin/chargerfw-boot"
# The safety process first: the station unit requires it.
UNIT_NAMES = ("chargerfw-safety.service", "chargerfw.service")
# The most `systemd-analyze security` may rate any unit we ship (0 safe .. 10 exposed).
MAX_EXPOSURE = 2.0
# Where systemd makes each kind of managed directory (system units); the process may write them.
MANAGED_DIRECTORY_ROOTS = {
    "RuntimeDirectory": "/run", "StateDirectory": "/var/lib", "CacheDirectory": "/var/cache",
    "LogsDirectory": "/var/log",
}
_SPECIFIERS = {"%t": "/run", "%S": "/var/lib", "%C": "/var/cache", "%L": "/var/log", "%E": "/etc"}


def shipped_units() -> dict[str, str]:
    """Each unit in systemd/, by name, as the repository ships it."""
    return {name: (ROOT / "systemd" / name).read_text() for name in UNIT_NAMES}


class UnitFile:
    """The settings of one unit file: ``[Section] Key=value`` lines, repeated keys kept in order.

    Enough of systemd's syntax for our units: comments, blank lines, no line continuations.
    """

    def __init__(self, text: str) -> None:
        self._settings: dict[tuple[str, str], list[str]] = {}
        section = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            assert not line.endswith("\\"), f"line continuation not supported: {raw!r}"
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            key, sep, value = line.partition("=")
            assert sep, f"not a setting: {raw!r}"
            self._settings.setdefault((section, key.strip()), []).append(value.strip())

    def values(self, key: str, section: str = "Service") -> list[str]:
        """Every assignment of ``key``, in order (an empty assignment resets the list, as in systemd)."""
        values: list[str] = []
        for value in self._settings.get((section, key), []):
            values = [] if value == "" else [*values, value]
        return values

    def value(self, key: str, section: str = "Service") -> str | None:
        """The last assignment of a single-valued key, or None."""
        values = self.values(key, section)
        return values[-1] if values else None

    def environment(self) -> dict[str, str]:
        """``Environment=`` as the process gets it (quoted words, later assignments win)."""
        return dict(word.split("=", 1) for line in self.values("Environment")
                    for word in shlex.split(line))

    def managed_directories(self) -> dict[str, str]:
        """Each directory systemd makes writable for the unit's user, with its octal mode."""
        directories: dict[str, str] = {}
        for kind, root in MANAGED_DIRECTORY_ROOTS.items():
            mode = self.value(f"{kind}Mode") or "0755"
            for line in self.values(kind):
                for name in line.split():
                    directories[f"{root}/{name}"] = mode
        return directories


@functools.cache
def system_call_group(group: str) -> frozenset[str]:
    """A system call group (``@name``) as this machine's systemd defines it, nested groups expanded."""
    listing = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", group],
                             capture_output=True, text=True, check=True).stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:  # the first line names the group
        word = line.strip()
        if word and not word.startswith("#"):
            names |= system_call_group(word) if word.startswith("@") else {word}
    return frozenset(names)


def allowed_system_calls(unit: UnitFile) -> set[str]:
    """What SystemCallFilter= lets through, read as systemd reads it: the first entry makes it an
    allow list (with @default, always allowed), later "~" entries take names away, others add."""
    filters = unit.values("SystemCallFilter")
    assert filters and not filters[0].startswith("~"), "an allow list is expected"
    allowed = set(system_call_group("@default"))
    for entry in filters:
        names: set[str] = set()
        for word in entry.removeprefix("~").split():
            names |= system_call_group(word) if word.startswith("@") else {word}
        allowed = allowed - names if entry.startswith("~") else allowed | names
    return allowed


def resolve_specifiers(value: str) -> str:
    for specifier, path in _SPECIFIERS.items():
        value = value.replace(specifier, path)
    return value.replace("%%", "%")


def installed_as(text: str, executable: Path) -> str:
    """The unit text with its chargerfw executable (or the launcher) replaced by
    ``executable``."""
    assert INSTALLED_EXECUTABLE in text or BOOT_LAUNCHER in text
    return text.replace(INSTALLED_EXECUTABLE, str(executable)).replace(BOOT_LAUNCHER,
                                                                       str(executable))


def write_units(units: Mapping[str, str], executable: Path, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in units.items():
        path = directory / name
        path.write_text(installed_as(text, executable))
        paths.append(path)
    return paths


def assert_units_verify_clean(units: Mapping[str, str], executable: Path, workdir: Path) -> None:
    """Point each unit's ExecStart at ``executable`` and `systemd-analyze verify` them together
    (the station unit requires the safety unit, which verify must find beside it).

    Unknown or misspelt keys only warn, so any output on stderr counts as a failure too.
    """
    paths = write_units(units, executable, workdir / "verify")
    result = subprocess.run(["systemd-analyze", "verify", *map(str, paths)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def security_exposure(unit: Path) -> float:
    """`systemd-analyze security`'s overall exposure for a unit file that is not installed.

    --offline=yes analyses the file as written (systemd ≥ 250) instead of asking the running
    manager about a loaded unit; its last line reads "→ Overall exposure level for NAME: 1.5 OK".
    """
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(rf"Overall exposure level for {re.escape(unit.name)}: (\d+\.\d)",
                      result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


def assert_units_exposure_at_most(units: Mapping[str, str], executable: Path, workdir: Path,
                                  limit: float = MAX_EXPOSURE) -> dict[str, float]:
    paths = write_units(units, executable, workdir / "security")
    exposures = {path.name: security_exposure(path) for path in paths}
    assert all(exposure <= limit for exposure in exposures.values()), exposures
    return exposures
