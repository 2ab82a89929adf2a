#!/usr/bin/env bash
# Install the Debian packages chargerfw needs to build and to run its real-stack tests.
# As root: apt-get install what is missing. Otherwise: name the missing packages and stop.
set -euo pipefail

packages=(
  python3-venv python3-dev gcc make          # the virtualenv and packages that compile
  libpcsclite-dev swig                       # pyscard builds against PC/SC lite
  pcscd vsmartcard-vpcd pcsc-tools           # real PC/SC daemon and the virtual reader driver
  socat                                      # real serial line pairs (pty) for RTU / UART readers
  mbpoll                                     # an independent Modbus client
  postgresql                                 # the backend's scale mode, tested on a real server
  systemd                                    # systemd-analyze verify for the unit file
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "chargerfw needs these Debian packages, which are not installed:" >&2
  echo "  ${missing[*]}" >&2
  echo "Install them as root:  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
