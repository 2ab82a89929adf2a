#!/usr/bin/env bash
# Install chargerfw on a Raspberry Pi: venv under PREFIX, config under /etc/chargerfw,
# state under /var/lib/chargerfw (systemd StateDirectory), the unit enabled.
set -euo pipefail
prefix=${1:-/opt/chargerfw}
src=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" -eq 0 ] || { echo "install.sh must run as root" >&2; exit 1; }

for group in gpio dialout i2c; do
  getent group "$group" >/dev/null || groupadd --system "$group"
done
if ! id chargerfw >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/chargerfw --no-create-home --shell /usr/sbin/nologin \
    --user-group --groups gpio,dialout,i2c chargerfw
fi

python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install -q --upgrade pip
extra=pi
# The Pi 5 has no RPi.GPIO; rpi-lgpio provides the same API everywhere else too.
"$prefix/venv/bin/pip" install -q "$src[$extra]"

install -d -m 0750 -o root -g chargerfw /etc/chargerfw
if [ ! -e /etc/chargerfw/chargerfw.toml ]; then
  install -m 0640 -o root -g chargerfw "$src/hw/stations/pi-example.toml" /etc/chargerfw/chargerfw.toml
  echo "wrote /etc/chargerfw/chargerfw.toml: edit it, then: systemctl start chargerfw"
fi
sed "s|/opt/chargerfw/venv|$prefix/venv|" "$src/systemd/chargerfw.service" \
  > /etc/systemd/system/chargerfw.service
if [ -d "$src/hw/udev" ]; then
  install -m 0644 "$src"/hw/udev/*.rules /etc/udev/rules.d/
  udevadm control --reload || true
fi
systemctl daemon-reload
systemctl enable chargerfw.service
echo "chargerfw installed in $prefix; config /etc/chargerfw/chargerfw.toml; state /var/lib/chargerfw"
