"""The database: pool, embedded PostgreSQL, migrations, ``Repository`` (the only code that runs
SQL) and ``Database`` (connections and user-scoped transactions). Imports only the foundation.
"""
