#!/usr/bin/env bash
# Install chargerfw on a Raspberry Pi: venv under PREFIX, config under /etc/chargerfw,
# state under /var/lib/chargerfw (systemd StateDirectory), both units enabled: the safety
# process (chargerfw-safety.service) and the station (chargerfw.service, which requires it).
#
# Usage (as root): scripts/install.sh [PREFIX]      or: make install [VAR=value ...]
# Variables, read from the environment (`make install` passes them through):
#   PREFIX            where the venv goes (default /opt/chargerfw; a first argument wins).
#   DESTDIR           staging root, as packagers use: every file is written under it (venv at
#                     $DESTDIR$PREFIX/venv, $DESTDIR/etc/...), root is not required, and the
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
# Safe to run again: a working venv is reused, an existing chargerfw.toml is always kept.
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

venv=$destdir$prefix/venv
# Reuse a working venv; remake one whose interpreter is gone (e.g. after an OS upgrade).
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv --clear "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
package=$src
# The Pi 5 has no RPi.GPIO; rpi-lgpio provides the same API everywhere else too.
[ -z "$extras" ] || package="$src[$extras]"
# pip always reinstalls from a source directory, so a re-run picks up a newer checkout.
"$venv/bin/python" -m pip install -q "${pip_install_args[@]}" "$package"

etc=$destdir/etc/chargerfw
install -d -m 0750 "${owner_args[@]}" "$etc"
if [ ! -e "$etc/chargerfw.toml" ]; then
  install -m 0640 "${owner_args[@]}" "$src/hw/stations/pi-example.toml" "$etc/chargerfw.toml"
  echo "wrote $etc/chargerfw.toml: edit it, then: systemctl start chargerfw"
else
  echo "kept the existing $etc/chargerfw.toml"
fi

# The units name the venv at its final place, not the staging path.
units=(chargerfw-safety.service chargerfw.service)
unit_dir=$destdir/etc/systemd/system
install -d -m 0755 "$unit_dir"
for unit in "${units[@]}"; do
  sed "s|/opt/chargerfw/venv|$prefix/venv|" "$src/systemd/$unit" >"$unit_dir/$unit.tmp"
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
echo "chargerfw installed in $destdir$prefix; config $etc/chargerfw.toml; state /var/lib/chargerfw"
