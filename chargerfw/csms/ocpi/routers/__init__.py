"""One FastAPI router per OCPI module the CPO API serves, and the open-data feed."""
