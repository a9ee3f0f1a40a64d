#!/usr/bin/env bash
# Local stand-ins for the base images the Dockerfile and compose.yaml name, for a machine that
# reaches no container registry (this project's CI: Debian's and PyPI's mirrors only), built
# with debootstrap and `podman import` under the names the files use, so that neither file
# changes for the smoke test:
#   python:3.11-slim-bookworm  Debian bookworm minbase with its python3 (3.11) and venv, and
#                              this host's CA certificates (pip in the build trusts what the
#                              host does)
#   pgvector/pgvector:pg17     Debian trixie minbase with postgresql-17 and postgresql-17-pgvector
#                              (bookworm has no pgvector for 17), and an entrypoint with the
#                              official image's POSTGRES_* contract (postgres-entrypoint.sh)
# An image already in podman's store is kept. Needs root, debootstrap and podman.
#   tests/containers/standins.sh [--force]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm
POSTGRES_IMAGE=docker.io/pgvector/pgvector:pg17
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
force=false
[ "${1:-}" = --force ] && force=true

work=$(mktemp -d /var/tmp/docingest-standins.XXXXXX)
trap 'rm -rf "$work"' EXIT

wanted() {  # wanted IMAGE: true when IMAGE must be (re)built
    $force || ! podman image exists "$1"
}
bootstrap() {  # bootstrap SUITE DIR PACKAGES: a minbase root file system
    echo "debootstrap $1 into $2 with $3"
    debootstrap --variant=minbase --include="$3" "$1" "$2" "$MIRROR" >"$work/debootstrap-$1.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap-$1.log"; return 1; }
    rm -rf "$2"/var/lib/apt/lists/* "$2"/var/cache/apt/archives/*.deb
}
import() {  # import DIR IMAGE CHANGE...: DIR as a one-layer image named IMAGE
    local dir=$1 image=$2
    shift 2
    local -a changes=()
    local change
    for change in "$@"; do changes+=(--change "$change"); done
    tar -C "$dir" -c . | podman import --quiet "${changes[@]}" - "$image" >/dev/null
    echo "built $image"
}

if wanted "$PYTHON_IMAGE"; then
    bootstrap bookworm "$work/python" python3,python3-venv,ca-certificates
    cp /etc/ssl/certs/ca-certificates.crt "$work/python/etc/ssl/certs/ca-certificates.crt"
    import "$work/python" "$PYTHON_IMAGE" 'ENV LANG=C.UTF-8' 'CMD ["python3"]'
    rm -rf "$work/python"
else
    echo "kept $PYTHON_IMAGE"
fi
if wanted "$POSTGRES_IMAGE"; then
    bootstrap trixie "$work/postgres" postgresql-17,postgresql-17-pgvector
    install -m 0755 "$here/postgres-entrypoint.sh" "$work/postgres/usr/local/bin/docker-entrypoint.sh"
    import "$work/postgres" "$POSTGRES_IMAGE" 'ENV LANG=C.UTF-8' 'ENV PGDATA=/var/lib/postgresql/data' \
        'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]' 'EXPOSE 5432' 'STOPSIGNAL SIGINT'
else
    echo "kept $POSTGRES_IMAGE"
fi
