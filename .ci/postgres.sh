#!/usr/bin/env bash
# A throwaway PostgreSQL for the store tests, on a private port and data directory.
#
#   source .ci/postgres.sh           # install if missing, start (or reuse), export the URL
#   eval "$(.ci/postgres.sh)"        # the same, when run as a command
#   .ci/postgres.sh stop             # stop the cluster (the data directory is kept for reuse)
#
# Run as a command, stdout carries only the `export HER2_TEST_POSTGRES_URL=...` line, so that
# `eval` works; progress goes to stderr. On GitHub Actions the variable is also appended to
# $GITHUB_ENV. Idempotent: a second run finds the running cluster, role and database and only
# prints the URL again. Run as root (installs Debian's postgresql, runs the server as the
# `postgres` user) or as a user on a machine that has the server binaries (runs it as that user).
# Settings: HER2_PG_PORT (55432), HER2_PG_DATA (/var/tmp/her2-adapter-pg), HER2_PG_DB,
# HER2_PG_USER, HER2_PG_PASSWORD.

if (return 0 2>/dev/null); then
    # Sourced: do the work in a child shell, so its `set -e` and exits stay there, then export
    # the URL into the caller's shell.
    _her2_pg_export="$(bash "${BASH_SOURCE[0]}" "$@")" || return
    eval "$_her2_pg_export"
    unset _her2_pg_export
    return 0
fi

set -euo pipefail

PORT="${HER2_PG_PORT:-55432}"
DATA_DIR="${HER2_PG_DATA:-/var/tmp/her2-adapter-pg}"
DB_NAME="${HER2_PG_DB:-her2_test}"
DB_USER="${HER2_PG_USER:-her2}"
DB_PASSWORD="${HER2_PG_PASSWORD:-her2}"
SOCKET_DIR="$DATA_DIR/socket"
LOG_FILE="$DATA_DIR/server.log"

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

install_server() {
    if [[ "$(id -u)" -ne 0 ]]; then
        log "PostgreSQL server binaries are missing and installing them needs root"
        exit 1
    fi
    log "installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
}

BINDIR="$(find_bindir)" || { install_server; BINDIR="$(find_bindir)"; }

if [[ "$(id -u)" -eq 0 ]]; then
    RUN_AS=(runuser -u postgres --)
    OWNER=postgres
else
    RUN_AS=()
    OWNER="$(id -un)"
fi

as_owner() { "${RUN_AS[@]}" "$@"; }

is_running() { as_owner "$BINDIR/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1; }

if [[ "${1:-}" == "stop" ]]; then
    if is_running; then
        as_owner "$BINDIR/pg_ctl" stop -D "$DATA_DIR" -m fast -w >&2
    fi
    log "stopped"
    exit 0
fi

if [[ ! -f "$DATA_DIR/PG_VERSION" ]]; then
    log "creating cluster in $DATA_DIR"
    mkdir -p "$DATA_DIR"
    chown "$OWNER" "$DATA_DIR"
    chmod 700 "$DATA_DIR"
    # Local socket for the setup below; TCP clients must give the password.
    as_owner "$BINDIR/initdb" -D "$DATA_DIR" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >&2
fi
as_owner mkdir -p "$SOCKET_DIR"

if ! is_running; then
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        log "port $PORT is taken by another process; set HER2_PG_PORT"
        exit 1
    fi
    log "starting on 127.0.0.1:$PORT"
    # fsync off: a disposable test cluster; the tests check the adapter's commits, not the disk.
    as_owner "$BINDIR/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 \
        -o "-p $PORT -k $SOCKET_DIR -c listen_addresses=127.0.0.1 -c fsync=off" >&2
else
    log "reusing the running cluster in $DATA_DIR"
fi

psql_admin() { as_owner "$BINDIR/psql" -h "$SOCKET_DIR" -p "$PORT" -U postgres -d postgres -qtAX "$@"; }

if [[ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" ]]; then
    psql_admin -c "CREATE ROLE \"$DB_USER\" LOGIN PASSWORD '$DB_PASSWORD'"
fi
if [[ -z "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]]; then
    psql_admin -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$DB_USER\""
fi

URL="postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/$DB_NAME"
if [[ -n "${GITHUB_ENV:-}" ]]; then
    echo "HER2_TEST_POSTGRES_URL=$URL" >>"$GITHUB_ENV"
fi
log "ready"
echo "export HER2_TEST_POSTGRES_URL=$URL"
