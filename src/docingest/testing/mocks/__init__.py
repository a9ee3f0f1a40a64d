"""Mock servers of the paid cloud services (LlamaParse, OpenAI embeddings) for tests and
local development: real HTTP servers speaking the services' wire contracts, with fault knobs.

Start them with ``docingest mock llamaparse`` (port 8001) and ``docingest mock openai``
(port 8002); both answer ``GET /health`` and report what they saw at ``GET /_mock/stats``.
"""
