#!/bin/bash
# Entrypoint for sgivu-bench/postgres:15. Starts as root only to fix ownership
# of the data directory, then re-executes itself as the postgres user.
set -Eeuo pipefail

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

err() { echo "postgres-entrypoint: $*" >&2; }
info() { echo "postgres-entrypoint: $*"; }

# Extra arguments that are options go to postgres: `docker run img -c foo=bar`.
if [ "$#" -eq 0 ] || [ "${1:0:1}" = "-" ]; then
    set -- postgres "$@"
fi

# Anything other than postgres (psql, pg_dump, bash...) runs as asked.
if [ "$1" != "postgres" ]; then
    exec "$@"
fi

if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    err "POSTGRES_PASSWORD is required and empty or unset; refusing to start"
    exit 1
fi
POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
export POSTGRES_USER POSTGRES_DB

if [ "$(id -u)" = "0" ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    # Only touch ownership when needed (large volumes, read-only bind mounts).
    if [ "$(stat -c %U "$PGDATA")" != "postgres" ]; then
        chown -R postgres:postgres "$PGDATA"
    fi
    chmod 0700 "$PGDATA"
    chown postgres:postgres /var/run/postgresql
    chmod 2775 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

psql_local() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" \
        --host /var/run/postgresql "$@"
}

valid_name() { [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_-]{0,62}$ ]]; }

create_database() {
    local db="$1"
    valid_name "$db" || { err "invalid database name: $db"; exit 1; }
    if [ "$(psql_local --dbname postgres -tA -v db="$db" \
            <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")" = "1" ]; then
        info "database $db already exists"
        return
    fi
    psql_local --dbname postgres -v db="$db" -v owner="$POSTGRES_USER" \
        <<<'CREATE DATABASE :"db" OWNER :"owner";'
    info "created database $db"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    valid_name "$POSTGRES_USER" || { err "invalid POSTGRES_USER: $POSTGRES_USER"; exit 1; }
    info "initialising a new cluster in $PGDATA"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    # Every non-local connection needs the password (scram-sha-256).
    {
        echo
        echo "# sgivu-bench: password authentication from any address"
        echo "host all all all scram-sha-256"
    } >> "$PGDATA/pg_hba.conf"
    {
        echo
        echo "# sgivu-bench"
        echo "listen_addresses = '*'"
        echo "password_encryption = scram-sha-256"
        echo "unix_socket_directories = '/var/run/postgresql'"
    } >> "$PGDATA/postgresql.conf"

    # Temporary server on the socket only, to create databases and run init scripts.
    pg_ctl -D "$PGDATA" -w -t 60 -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start >/dev/null
    if [ "$POSTGRES_DB" != "postgres" ]; then
        create_database "$POSTGRES_DB"
    fi
    IFS=',' read -r -a extra_dbs <<<"${POSTGRES_MULTIPLE_DATABASES:-}"
    for db in "${extra_dbs[@]}"; do
        db="${db//[[:space:]]/}"
        [ -n "$db" ] && [ "$db" != "postgres" ] && create_database "$db"
    done
    shopt -s nullglob
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)  info "running $f"; bash "$f" ;;
            *.sql) info "running $f"; psql_local --dbname "$POSTGRES_DB" -f "$f" ;;
            *)     info "ignoring $f" ;;
        esac
    done
    shopt -u nullglob
    pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    info "initialisation complete"
else
    info "existing cluster in $PGDATA (PG_VERSION $(cat "$PGDATA/PG_VERSION")); skipping init"
fi

# Run postgres in the foreground as a child so that SIGTERM (docker stop) can be
# turned into a fast shutdown (SIGINT); postgres itself treats SIGTERM as "smart"
# shutdown, which waits for every client to disconnect.
"$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' TERM INT
trap 'kill -QUIT "$pid" 2>/dev/null || true' QUIT
set +e
wait "$pid"
rc=$?
while kill -0 "$pid" 2>/dev/null; do
    wait "$pid"
    rc=$?
done
exit "$rc"
