#!/bin/sh
# The stand-in for pgvector/pgvector's entrypoint (the official postgres image's contract, the
# part compose.yaml uses): POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB create the cluster
# in PGDATA on the first start; then the server listens on every address with password auth.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
BIN=$(echo /usr/lib/postgresql/*/bin)
export PGDATA
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /run/postgresql
    chown -R postgres:postgres "$PGDATA" /run/postgresql
    chmod 700 "$PGDATA"
    exec runuser -u postgres -- "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
    user=${POSTGRES_USER:-postgres}
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    "$BIN/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    db=${POSTGRES_DB:-$user}
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\"" | "$BIN/postgres" --single -D "$PGDATA" -j postgres >/dev/null
    fi
    echo "stand-in postgres: cluster created (user $user, database $db)"
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*'
