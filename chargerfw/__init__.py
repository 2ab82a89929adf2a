"""chargerfw: charge-point controller firmware for Raspberry Pi EV chargers."""

__version__ = "0.1.0"
# What `chargerfw --version` prints (with or without click loaded).
VERSION_LINE = f"chargerfw, version {__version__}"
