"""Hardware described as data: meter register maps, board pin maps, udev rules.

Installed as the ``chargerfw.hw`` package so the files ship inside the wheel.
"""

from importlib.resources import files
from importlib.resources.abc import Traversable


def data_path(*parts: str) -> Traversable:
    """Return a file or folder inside the shipped hardware data."""
    node = files(__name__)
    for part in parts:
        node = node / part
    return node
