"""The part of the station that owns what can hurt: contactor coils and their feedback, the fault
inputs (RCD/RCM, emergency stop), the control pilot, the lock and the temperature sensors.

:class:`~chargerfw.safety.core.SafetyCore` holds them and their interlocks. It runs either in
the station's own process (``[safety] mode = "thread"``: a monitor thread beside the asyncio
loop, as the simulated stations and the fleet use it) or alone in the *safety process*
(``mode = "process"``, ``chargerfw safety run``, :mod:`~chargerfw.safety.process`), which the
station reaches over a local socket (:mod:`~chargerfw.safety.link`). The station process only
*asks*: a coil closes when the station requests it and the safety core's own rules allow it, and
opens on any fault, on the pilot leaving C/D, and in the safety process also when the station
falls silent.
"""
