"""The companion backend: an OCPP 1.6J central system with an OCPI 2.2.1 CPO API.

Parts (imports point downwards; nothing here imports the firmware runtime):
- ``tables`` / ``db``: schema (SQLAlchemy Core), engines for SQLite and PostgreSQL, alembic
  migrations applied at start.
- ``store``: the one data layer used by the OCPP side, the OCPI side and the CLI: one module
  per aggregate behind the ``Store`` facade.
- ``billing``: meter values -> a session's usage (charging or parked).
- ``tariff_engine``: OCPI 2.2.1 tariffs -> charging periods and what a session costs.
- ``authorization``: OCPI tokens and real-time authorization decide OCPP Authorize.
- ``ocpp_server``: the websockets server and requests to connected chargers;
  ``login_limits``: the lockout of failed charger logins.
- ``urlpolicy``: which partner-given URLs the backend may call, and the HTTP transport that
  holds every outgoing call to it.
- ``ocpi``: typed models, the FastAPI app (one router per OCPI module, shared pieces in
  ``common``, request bounds in ``limits``), commands, the push worker, registration, pulls
  from partners (``pull``, ``token_pull``, ``hubs``, scheduled by ``partner_sync``).
- ``server``: ``running_csms(settings)`` runs it all in one loop (``chargerfw csms serve``).

Quick start::

    chargerfw csms tariff add T1 --energy 0.30 --time 1.20 --vat 21
    chargerfw csms charger add CP1 --password s3cret --location-id LOC1 \\
        --address "Stationsplein 1" --city Utrecht --country NLD \\
        --coordinates 52.08917,5.11028 --time-zone Europe/Amsterdam --tariff T1
    chargerfw csms location set LOC1 --open-247 --operator "My CPO" --facility CAFE \
        --parking-type PARKING_LOT              # what an eMSP app shows
    chargerfw csms partner add "My eMSP"        # prints TOKEN_A for the eMSP
    chargerfw csms serve                        # ws://127.0.0.1:9000/ocpp/CP1, OCPI on :9001
    chargerfw csms sessions --json              # OCPI Session objects
"""
