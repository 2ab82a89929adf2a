"""The protocol edge. Version-neutral parts: the connection (``connection``), the connector
statuses on their way out (``status``), meter sampling (``sampler``, ``metering``), the durable
outbox pump (``outbox``), what the station offers (``station_port``) and the configuration keys.
One package per OCPP version composes them into a client: ``v16``."""
