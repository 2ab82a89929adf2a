"""Where the hardware data is read from: meter register maps, station configs, scenarios and
udev rules, kept in the top-level ``hw/`` folder and installed as the data package
``chargerfw.hw`` so they ship inside the wheel.

The code that reads them lives here, inside the package tree, so a type checker and the layer
contracts see it like any other base module; ``hw/`` holds data only.
"""

from importlib.resources import files
from importlib.resources.abc import Traversable

DATA_PACKAGE = "chargerfw.hw"


def data_path(*parts: str) -> Traversable:
    """Return a file or folder inside the shipped hardware data."""
    node = files(DATA_PACKAGE)
    for part in parts:
        node = node / part
    return node
