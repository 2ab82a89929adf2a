"""OCPP-J parts shared by the station and the backend: frames with bounds and redaction, and
the loggers handed to the link's libraries. Nothing here knows either end."""
