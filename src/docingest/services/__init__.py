"""Services: what every entry point calls (documents, ingest, search, evaluation, info, progress,
the embedder check). They import worker, stages, providers, db and the foundation; never api or cli.
"""
