"""Baton server: sessions with an append-only event log, served over gRPC."""

__version__ = "0.1.0"
