"""Providers: storage, parsing, chunking, embedding (a protocol in each ``base.py``, one module per
provider, one registry per kind) and the shared rate limiter. Import db, observability, foundation.
"""
