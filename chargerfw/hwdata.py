"""Where the hardware data is read from: meter register maps, station configs, scenarios and
udev rules, kept in the top-level ``hw/`` folder and installed as the data package
``chargerfw.hw`` so they ship inside the wheel.

The code that reads them lives here, inside the package tree, so a type checker and the layer
contracts see it like any other base module; ``hw/`` holds data only.
"""

import importlib
from pathlib import Path

DATA_PACKAGE = "chargerfw.hw"


def data_path(*parts: str) -> Path:
    """Return a file or folder inside the shipped hardware data."""
    # A wheel installs the data as plain files beside the code: the package's folder is the
    # data, without importlib.resources (and the archive support it loads at start-up).
    package = importlib.import_module(DATA_PACKAGE)
    return Path(next(iter(package.__path__))).joinpath(*parts)
