"""The OCPI 2.2.1 CPO HTTP API (FastAPI) and the open-data feed, assembled from one router
per OCPI module (``routers``) and the shared pieces in ``common``."""

from __future__ import annotations

from fastapi import FastAPI

from chargerfw.csms.ocpi.common import OcpiContext, OcpiHeaders, answer_errors_in_envelopes
from chargerfw.csms.ocpi.routers import (
    cdrs,
    chargingprofiles,
    commands,
    credentials,
    hubclientinfo,
    locations,
    opendata,
    sessions,
    tariffs,
    tokens,
    versions,
)

MODULES = (versions, credentials, locations, sessions, cdrs, tariffs, tokens, commands,
           chargingprofiles, hubclientinfo, opendata)


def create_app(ctx: OcpiContext) -> FastAPI:
    """The FastAPI application serving OCPI under /ocpi and the open feed under /opendata."""
    app = FastAPI(title="chargerfw CSMS (OCPI 2.2.1 CPO)", openapi_url=None, docs_url=None,
                  redoc_url=None)
    app.state.ocpi = ctx
    app.add_middleware(OcpiHeaders)
    answer_errors_in_envelopes(app)
    for module in MODULES:
        app.include_router(module.router)
    return app
