"""The worker: slot threads that claim jobs (``SKIP LOCKED``), hold leases with a heartbeat, run the
stage handlers and record retries and failures. Imports stages, providers, db and below.
"""
