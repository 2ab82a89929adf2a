#!/usr/bin/env bash
# Install chargerfw on a Raspberry Pi: the tree as the first release slot under PREFIX
# (PREFIX/releases/<version>, a venv, with PREFIX/current pointing at it, as firmware updates
# install theirs; docs/firmware-update.md), the boot launcher PREFIX/bin/chargerfw-boot, config
# under /etc/chargerfw, state under /var/lib/chargerfw (systemd StateDirectory), both units
# enabled: the safety process (chargerfw-safety.service) and the station (chargerfw.service,
# which requires it and starts through the launcher).
#
# Usage (as root): scripts/install.sh [PREFIX]      or: make install [VAR=value ...]
# Variables, read from the environment (`make install` passes them through):
#   PREFIX            where the release slots go (default /opt/chargerfw; a first argument wins).
#   DESTDIR           staging root, as packagers use: every file is written under it (slot at
#                     $DESTDIR$PREFIX/releases/<version>, $DESTDIR/etc/...), root is not required, and the
#                     steps that change the live system (groupadd/useradd, udevadm, systemctl,
#                     ownership by a chargerfw group that does not exist) are skipped, each with
#                     a line saying what a real install does. The units still name $PREFIX.
#                     Note: a venv's scripts name its own path, so a staged venv runs from
#                     $DESTDIR$PREFIX only; build it at its final path for a package.
#   EXTRAS            pip extra(s) for chargerfw, default "pi" (rpi-lgpio, which needs the lgpio
#                     C library); set it empty for none, e.g. on a PC.
#   PYTHON            interpreter the venv is made from (default python3).
#   PIP_INSTALL_ARGS  extra arguments for the pip install of chargerfw, split on spaces. Empty
#                     (the default) is the normal, full install with dependencies; tests use
#                     "--no-deps" and provide the dependencies themselves.
# Safe to run again: a working slot venv is reused, an existing chargerfw.toml is always kept;
# a slot another version made current (an update) becomes `previous`.
set -euo pipefail

prefix=${1:-${PREFIX:-/opt/chargerfw}}
extras=${EXTRAS-pi}
python=${PYTHON:-python3}
read -r -a pip_install_args <<<"${PIP_INSTALL_ARGS:-}"
src=$(cd "$(dirname "$0")/.." && pwd)

destdir=""
if [ -n "${DESTDIR:-}" ]; then
  mkdir -p "$DESTDIR"
  destdir=$(cd "$DESTDIR" && pwd)
  [ "$destdir" != / ] || destdir=""  # DESTDIR=/ is a real install
fi
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh must run as root (or set DESTDIR to stage the files)" >&2
  exit 1
fi

# Run a command that changes the live system; with DESTDIR only say what a real install runs.
live() {
  if [ -n "$destdir" ]; then
    echo "DESTDIR set, skipped: $* (a real install runs this)"
  else
    "$@"
  fi
}

for group in gpio dialout i2c; do
  getent group "$group" >/dev/null || live groupadd --system "$group"
done
if ! id chargerfw >/dev/null 2>&1; then
  live useradd --system --home-dir /var/lib/chargerfw --no-create-home --shell /usr/sbin/nologin \
    --user-group --groups gpio,dialout,i2c chargerfw
fi

# Config is readable by the service's group only (it may carry the OCPP password).
owner_args=(-o root -g chargerfw)
if [ -n "$destdir" ] && { [ "$(id -u)" -ne 0 ] || ! getent group chargerfw >/dev/null; }; then
  echo "DESTDIR set, skipped: chown root:chargerfw /etc/chargerfw and its config (a real install does this)"
  owner_args=()
fi

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$src/chargerfw/__init__.py")
[ -n "$version" ] || { echo "no __version__ in $src/chargerfw/__init__.py" >&2; exit 1; }
root=$destdir$prefix
venv=$root/releases/$version
# Reuse a working venv; remake one whose interpreter is gone (e.g. after an OS upgrade).
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv --clear "$venv"
fi
rm -f "$venv/.complete"
"$venv/bin/python" -m pip install -q --upgrade pip
package=$src
# The Pi 5 has no RPi.GPIO; rpi-lgpio provides the same API everywhere else too.
[ -z "$extras" ] || package="$src[$extras]"
# pip always reinstalls from a source directory, so a re-run picks up a newer checkout.
"$venv/bin/python" -m pip install -q "${pip_install_args[@]}" "$package"

# The slot's manifest (unsigned: it was built here, not downloaded), spelt as
# chargerfw.release.manifest reads it, then the marker that makes the slot complete.
"$venv/bin/python" - "$version" >"$venv/manifest.json" <<'PY'
import json, sys, sysconfig
print(json.dumps({"format_version": 1, "version": sys.argv[1], "min_previous_version": "0",
                  "python_tag": f"cp{sys.version_info.major}{sys.version_info.minor}",
                  "platform": sysconfig.get_platform().replace("-", "_").replace(".", "_"),
                  "files": {}}, indent=2, sort_keys=True))
PY
sync
echo "$version" >"$venv/.complete"
# Links are relative to the prefix and replaced atomically (a new link renamed over the old).
point() {
  ln -sfn "$2" "$root/.$1.install.tmp"
  mv -T "$root/.$1.install.tmp" "$root/$1"
}
old=$(readlink "$root/current" || true)
if [ -n "$old" ] && [ "$old" != "releases/$version" ] && [ -f "$root/$old/.complete" ]; then
  point previous "$old"
fi
point current "releases/$version"
install -d -m 0755 "$root/bin"
install -m 0755 "$src/chargerfw/release/chargerfw-boot" "$root/bin/chargerfw-boot"
# Firmware updates from the backend build new slots and switch the links as the service user.
live chgrp chargerfw "$root" "$root/releases"
chmod 2775 "$root" "$root/releases"

etc=$destdir/etc/chargerfw
install -d -m 0750 "${owner_args[@]}" "$etc"
if [ ! -e "$etc/chargerfw.toml" ]; then
  install -m 0640 "${owner_args[@]}" "$src/hw/stations/pi-example.toml" "$etc/chargerfw.toml"
  echo "wrote $etc/chargerfw.toml: edit it, then: systemctl start chargerfw"
else
  echo "kept the existing $etc/chargerfw.toml"
  # It may hold the OCPP password: readable by the service's group only, as a new one is.
  chmod 0640 "$etc/chargerfw.toml"
  [ ${#owner_args[@]} -eq 0 ] || chown root:chargerfw "$etc/chargerfw.toml"
fi

# The units name the prefix at its final place, not the staging path.
units=(chargerfw-safety.service chargerfw.service)
unit_dir=$destdir/etc/systemd/system
install -d -m 0755 "$unit_dir"
for unit in "${units[@]}"; do
  sed "s|/opt/chargerfw|$prefix|g" "$src/systemd/$unit" >"$unit_dir/$unit.tmp"
  chmod 0644 "$unit_dir/$unit.tmp"
  mv "$unit_dir/$unit.tmp" "$unit_dir/$unit"
done

if [ -d "$src/hw/udev" ]; then
  install -d -m 0755 "$destdir/etc/udev/rules.d"
  install -m 0644 "$src"/hw/udev/*.rules "$destdir/etc/udev/rules.d/"
  live udevadm control --reload || true
fi
live systemctl daemon-reload
live systemctl enable "${units[@]}"
echo "chargerfw $version installed in $venv (current); config $etc/chargerfw.toml; state /var/lib/chargerfw"
