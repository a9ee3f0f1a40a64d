"""One router module per resource (upload, documents, jobs, search, health and metrics, the
LlamaParse webhook, the local storage service). A route parses, calls a service, renders.
"""
