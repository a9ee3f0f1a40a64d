"""Logs and metrics: structlog lines with redaction, Prometheus metrics.

Imports only the foundation (settings, errors, domain, backoff).
"""
