"""Sinks: projections of the canonical event for what SIEMs ingest."""
