"""The station core: charging logic between the drivers and the OCPP edge.

- ``connector``: the pure connector state machine (pilot × authorization × availability ×
  faults → OCPP status, error code, pilot output, contactor decision, transaction actions).
- ``safety``: the thread-safe supervisor that opens contactors on faults without asyncio.
- ``faults``: typed faults, their OCPP error codes and recovery rules.
- ``auth``: authorization cache, local list and offline rules.
- ``metering``: over-current judgement of meter samples.
- ``enums``: OCPP 1.6 value sets with wire spellings.

Imports point down only: this package uses ``chargerfw.drivers`` and never ``chargerfw.ocpp``.
"""
