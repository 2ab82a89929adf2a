"""Hardware described as data: meter register maps, station configs, scenarios, udev rules.

Installed as the data package ``chargerfw.hw`` so the files ship inside the wheel; read them
through :func:`chargerfw.hwdata.data_path`.
"""
