"""The OCPP 1.6J adapter: the client, its charge point over the ``ocpp`` library, frame
hardening, the backend's commands and the 1.6 requests."""
