#!/bin/bash
# Smoke test of the three bench images together (needs a local Docker engine and
# the images sgivu-bench/{postgres:15,redis:7,standin:1.0.0} already built).
# Creates a throwaway network, two volumes and three containers, all named with a
# random suffix, and removes every one of them on exit. Nothing is published on
# the host; requests are made from a curl container on the same network.
set -Eeuo pipefail

PG_IMAGE="${PG_IMAGE:-sgivu-bench/postgres:15}"
REDIS_IMAGE="${REDIS_IMAGE:-sgivu-bench/redis:7}"
STANDIN_IMAGE="${STANDIN_IMAGE:-sgivu-bench/standin:1.0.0}"

id="smoke-$$-$RANDOM"
net="$id-net"
pg="$id-pg"
redis="$id-redis"
app="$id-app"
pgvol="$id-pgdata"
redisvol="$id-redisdata"
# Throwaway credentials for this run only.
pgpass="pg-$RANDOM$RANDOM"
redispass="redis-$RANDOM$RANDOM"

cleanup() {
    docker rm -f -v "$app" "$redis" "$pg" >/dev/null 2>&1 || true
    docker volume rm "$pgvol" "$redisvol" >/dev/null 2>&1 || true
    docker network rm "$net" >/dev/null 2>&1 || true
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; docker logs --tail 30 "$app" >&2 2>/dev/null || true; exit 1; }

# curl from inside the standin image on the same network (no host ports).
req() { docker run --rm --network "$net" --entrypoint curl "$STANDIN_IMAGE" -sS "$@"; }

wait_health() { # container, timeout_s, command...
    local c="$1" t="$2"; shift 2
    for _ in $(seq "$t"); do
        if docker exec "$c" "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    fail "$c not healthy after ${t}s"
}

start_app() {
    docker run -d --name "$app" --network "$net" --network-alias sgivu-user \
        -e STANDIN_SERVICE=sgivu-user -e STANDIN_PORT=8081 \
        -e STANDIN_REQUIRED_ENV=STANDIN_DATABASE_URL,STANDIN_REDIS_URL \
        -e STANDIN_DATABASE_URL="postgresql://sgivu:$pgpass@sgivu-postgres:5432/sgivu_user" \
        -e STANDIN_REDIS_URL="redis://:$redispass@sgivu-redis:6379/0" \
        "$STANDIN_IMAGE" >/dev/null
    wait_health "$app" 60 curl -fsS http://127.0.0.1:8081/actuator/health
}

docker network create "$net" >/dev/null
docker volume create "$pgvol" >/dev/null
docker volume create "$redisvol" >/dev/null

docker run -d --name "$pg" --network "$net" --network-alias sgivu-postgres \
    -v "$pgvol:/var/lib/postgresql/data" \
    -e POSTGRES_USER=sgivu -e POSTGRES_PASSWORD="$pgpass" \
    -e POSTGRES_MULTIPLE_DATABASES=sgivu_user,sgivu_client,sgivu_vehicle,sgivu_purchase_sale \
    "$PG_IMAGE" >/dev/null
docker run -d --name "$redis" --network "$net" --network-alias sgivu-redis \
    -v "$redisvol:/data" -e REDIS_PASSWORD="$redispass" "$REDIS_IMAGE" >/dev/null

wait_health "$pg" 60 pg_isready -U sgivu -h 127.0.0.1
wait_health "$redis" 30 redis-health
echo "ok: postgres and redis healthy"

start_app
health="$(req http://sgivu-user:8081/actuator/health)"
echo "health: $health"
grep -q '"status": "UP"' <<<"$health" || fail "health not UP"
grep -q '"db": "UP"' <<<"$health" || fail "db component not UP"
grep -q '"redis": "UP"' <<<"$health" || fail "redis component not UP"

created="$(req -X POST --data-binary 'first vehicle' http://sgivu-user:8081/items)"
echo "POST /items: $created"
grep -q '"id": 1' <<<"$created" || fail "POST /items did not return id 1"
items="$(req http://sgivu-user:8081/items)"
echo "GET /items: $items"
grep -q '"body": "first vehicle"' <<<"$items" || fail "row not returned"

s1="$(req http://sgivu-user:8081/session)"
s2="$(req http://sgivu-user:8081/session)"
echo "GET /session x2: $s1 / $s2"
grep -q '"counter": 1' <<<"$s1" || fail "first session counter not 1"
grep -q '"counter": 2' <<<"$s2" || fail "second session counter not 2"

# Recreate the app container: data lives in Postgres/Redis, not in the app.
t0=$(date +%s.%N)
docker stop "$app" >/dev/null
stop_rc="$(docker inspect -f '{{.State.ExitCode}}' "$app")"
echo "standin stopped with exit code $stop_rc in $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s"
[ "$stop_rc" = "0" ] || fail "standin exit code $stop_rc on SIGTERM"
docker rm -f "$app" >/dev/null
start_app
items="$(req http://sgivu-user:8081/items)"
echo "GET /items after recreate: $items"
grep -q '"body": "first vehicle"' <<<"$items" || fail "row lost after recreate"
s3="$(req http://sgivu-user:8081/session)"
grep -q '"counter": 3' <<<"$s3" || fail "session counter not 3 after recreate: $s3"

# Recreate Postgres and Redis on the same volumes: no re-init, data survives.
docker rm -f "$pg" "$redis" >/dev/null
docker run -d --name "$pg" --network "$net" --network-alias sgivu-postgres \
    -v "$pgvol:/var/lib/postgresql/data" -e POSTGRES_USER=sgivu -e POSTGRES_PASSWORD="$pgpass" \
    "$PG_IMAGE" >/dev/null
docker run -d --name "$redis" --network "$net" --network-alias sgivu-redis \
    -v "$redisvol:/data" -e REDIS_PASSWORD="$redispass" "$REDIS_IMAGE" >/dev/null
wait_health "$pg" 60 pg_isready -U sgivu -h 127.0.0.1
wait_health "$redis" 30 redis-health
docker logs "$pg" 2>&1 | grep -q 'skipping init' || fail "postgres re-initialised an existing volume"
wait_health "$app" 30 curl -fsS http://127.0.0.1:8081/actuator/health
items="$(req http://sgivu-user:8081/items)"
grep -q '"body": "first vehicle"' <<<"$items" || fail "row lost after postgres recreate"
s4="$(req http://sgivu-user:8081/session)"
grep -q '"counter": 4' <<<"$s4" || fail "session counter not 4 after redis recreate: $s4"
echo "ok: data survived recreating postgres and redis"

echo "PASS"
