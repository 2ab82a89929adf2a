"""OCPI 2.2.1 CPO interface of the CSMS."""
