"""chargerfw: charge-point controller firmware for Raspberry Pi EV chargers."""

__version__ = "0.1.0"
