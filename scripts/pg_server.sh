#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests: Debian's package, a fresh cluster in a temp
# folder, bound to 127.0.0.1 only, trust auth. Prints the SQLAlchemy URL on stdout.
#   url=$(bash scripts/pg_server.sh start)   ...   bash scripts/pg_server.sh stop
#   bash scripts/pg_server.sh status   # exit 0 when the server of $LABELER_PG_DIR runs (who started it stops it)
# Installs the package first when missing and we are root (CI); exits 1 when no server can be had.
set -euo pipefail
DIR=${LABELER_PG_DIR:-/tmp/labeler-pg}
PORT=${LABELER_PG_PORT:-54329}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-start}" in
  start)
    if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 || true
      bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    [ -n "$bin" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
    if [ -f "$DIR/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
      echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"; exit 0
    fi
    rm -rf "$DIR"; mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    as_pg "$bin/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_pg "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=100" start >/dev/null
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
    ;;
  status)
    [ -n "$bin" ] && [ -f "$DIR/data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
    ;;
  stop)
    [ -n "$bin" ] && [ -d "$DIR/data" ] && as_pg "$bin/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
    ;;
esac
