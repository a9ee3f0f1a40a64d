"""Providers: storage, parsing, chunking, embedding, and the shared rate limiter.

Each kind has a protocol in its base module and one module per provider. Providers import
the foundation, observability and the database layer (rate limits), never services or entry points.
"""
