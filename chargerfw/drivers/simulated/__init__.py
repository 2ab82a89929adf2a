"""The simulated hardware on the far side of the simulated pins and buses, which a test or the
bench drives: the vehicle on the pilot line (:mod:`.vehicle`), the contactor, lock, RCM and
emergency stop on the GPIO pins (:mod:`.gpio_devices`), the ADC and temperature chips on the I2C
bus (:mod:`.i2c_devices`).

The simulated *backends* live beside the real ones: the pin factory in
:mod:`chargerfw.drivers.gpio`, the bus in :mod:`chargerfw.drivers.i2c`, the token reader in
:mod:`chargerfw.drivers.readers.simulated`. The device simulators that answer the real drivers
over real transports (Modbus, PC/SC, serial) are in :mod:`chargerfw.sim`.
"""
