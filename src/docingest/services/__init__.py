"""Services: the operations every entry point calls (documents, ingest, search, evaluation, info).

Services import the foundation, db, providers, stages and worker; never api or cli.
"""
