#!/usr/bin/env bash
# stack_health against a real Compose project on this machine's Docker engine: a healthy
# project passes (also in check mode) and prints its table with a time to healthy; a bad
# release fails soon after its own deadline, naming the service with its last log lines.
# The role changes nothing in either case. One line per check; non-zero exit on failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$root/.venv/bin:$PATH"
# Images from the bench's one list (bench/images.yml): a good release and one whose health
# endpoint always answers 503. bench/lib.sh built both; `images.py check` proved it.
good_ref=$(python "$root/bench/images.py" standin next)
bad_ref=$(python "$root/bench/images.py" standin never_healthy)
standin_repo=${good_ref%:*} good_tag=${good_ref##*:} bad_tag=${bad_ref##*:}
# Compose reads these to interpolate the project below; API_TAG moves from phase to phase.
export STANDIN_REPO=$standin_repo WEB_TAG=$good_tag API_TAG=$good_tag
re_tag() { sed 's/[.[\*^$+?(){}|]/\\&/g' <<<"$1"; }
project="h-health-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
work=$(mktemp -d)
cleanup() {
  docker compose -p "$project" -f "$work/compose.yml" down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
transcript=""
check() {  # check <description> <command...>
  local what=$1; shift
  if "$@"; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}

# Both start listening after 10 s, so the role sees each go from starting to healthy and can
# tell its time to healthy (Docker keeps only the last five probes: a service healthy long before
# the role looks has no known time). 10 s, not less: on a loaded machine (CI runs scenario default
# beside this check) ansible-playbook took 9 s to reach its first look, and with 4 s the five
# probes kept were all healthy by then.
cat > "$work/compose.yml" <<'COMPOSE'
services:
  web:
    image: "${STANDIN_REPO}:${WEB_TAG}"
    environment:
      STANDIN_SERVICE: web
      STANDIN_PORT: "8081"
      STANDIN_STARTUP_DELAY: "10"
    ports: ["127.0.0.1::8081"]
    healthcheck:
      test: [CMD, curl, -fsS, "http://127.0.0.1:8081/actuator/health"]
      interval: 1s
      timeout: 2s
      retries: 3
  api:
    image: "${STANDIN_REPO}:${API_TAG}"
    environment:
      STANDIN_SERVICE: api
      STANDIN_PORT: "8082"
      STANDIN_STARTUP_DELAY: "10"
    healthcheck:
      test: [CMD, curl, -fsS, "http://127.0.0.1:8082/actuator/health"]
      interval: 1s
      timeout: 2s
      retries: 3
COMPOSE

cat > "$work/play.yml" <<'PLAY'
---
- name: Check the health of the test project
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: sgivu.deploy.stack_health
PLAY

vars_for() {  # vars_for <api tag>: the catalog as extra vars JSON
  cat <<JSON
{"stack_name": "$project",
 "stack_health_check_routes": false,
 "stack_health_poll_interval": 1,
 "stack_services": {
   "web": {"image": "$standin_repo", "tag": "$good_tag", "port": 8081, "public": true, "host_port": 18081,
           "health": {"path": "/actuator/health", "interval": 1, "timeout": 60}},
   "api": {"image": "$standin_repo", "tag": "$1", "port": 8082,
           "health": {"path": "/actuator/health", "interval": 1, "timeout": 15}}}}
JSON
}

# No Nginx here: the route probe asks web's published port directly, which is enough to
# prove the probe and which routes it skips (the stand-in answers 200 on every path; how
# statuses are judged, 404 reachable and 502 down, is in the unit tests).
routes_vars() {  # routes_vars <web host port>
  cat <<JSON
{"stack_health_check_routes": true,
 "stack_health_base_url": "http://127.0.0.1:$1/",
 "stack_routes": [
   {"path": "/actuator/health", "service": "web"},
   {"path": "/version", "service": "web"},
   {"path": "^/regex/", "match": "regex", "service": "web"},
   {"path": "/allowlisted/", "service": "web", "allow": ["10.0.0.0/8"]}]}
JSON
}

run_role() {  # run_role <api tag> [ansible-playbook options]: output in $out, exit code in $rc
  local tag=$1; shift
  set +e
  out=$(cd "$work" && ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 \
        ansible-playbook -i localhost, -e 'ansible_python_interpreter={{ ansible_playbook_python }}' \
        -e "$(vars_for "$tag")" "$@" play.yml 2>&1)
  rc=$?
  set -e
  transcript+=$'\n'"--- ansible-playbook $* (api $tag): exit $rc"$'\n'"$out"
}

# Start (or change) the project with api at a tag; a failure stops the test with Compose's words.
compose_up() {  # compose_up <api tag>
  local output
  if ! output=$(API_TAG=$1 docker compose -p "$project" -f "$work/compose.yml" up -d --pull never --quiet-pull 2>&1); then
    echo "FAIL - docker compose up of the test project (api at $1) failed:" >&2
    echo "$output" >&2
    exit 1
  fi
}

recap_unchanged() { grep -Eq 'localhost +: ok=[0-9]+ +changed=0 ' <<<"$out"; }

# --- phase 1: both services good ---------------------------------------------------------
compose_up "$good_tag"
run_role "$good_tag"
phase1=$out
check "healthy project: the role passes" test "$rc" -eq 0
check "healthy project: the table shows web running, healthy, with a time to healthy" \
  grep -Eq "^ *- web +$(re_tag "$good_tag") +running +healthy +[0-9]+\.[0-9]" <<<"$phase1"
check "healthy project: the table shows api running, healthy, with a time to healthy" \
  grep -Eq "^ *- api +$(re_tag "$good_tag") +running +healthy +[0-9]+\.[0-9]" <<<"$phase1"
check "healthy project: the role reports changed=0" recap_unchanged

run_role "$good_tag" --check
check "healthy project in check mode: the role passes with changed=0" \
  bash -c '[ "$1" -eq 0 ] && grep -Eq "localhost +: ok=[0-9]+ +changed=0 " <<<"$2"' _ "$rc" "$out"

web_port=$(docker compose -p "$project" -f "$work/compose.yml" port web 8081 | sed 's/.*://')
run_role "$good_tag" -e "$(routes_vars "$web_port")"
check "routes: the role passes when the routes answer" test "$rc" -eq 0
check "routes: the table lists both plain routes as reachable" \
  bash -c 'grep -Eq "^ *- /actuator/health +web +200 +reachable" <<<"$1" && grep -Eq "^ *- /version +web +200 +reachable" <<<"$1"' _ "$out"
check "routes: regex and allowlisted routes are skipped" bash -c '! grep -Eq "regex|allowlisted" <<<"$1"' _ "$out"
check "routes: the role reports changed=0" recap_unchanged

# --- phase 2: api replaced by a release whose health always answers 503 -------------------
compose_up "$bad_tag"
run_role "$bad_tag"
check "bad release: the role fails" test "$rc" -ne 0
check "bad release: the failure names api as not healthy" \
  grep -q "1 service not healthy in time: api" <<<"$out"
check "bad release: the failure shows api's state, health and image tag" \
  grep -Eq "$project-api-1 \($(re_tag "$bad_tag")\): state running, health unhealthy" <<<"$out"
check "bad release: the failure includes api's last log lines" \
  grep -q 'api: health check answered 503 (the first probe)' <<<"$out"
check "bad release: web is not named" bash -c '! grep -Eq "^ *web: " <<<"$1"' _ "$out"
check "bad release: the role reports changed=0" recap_unchanged

if [ "$failures" -gt 0 ]; then
  echo "$transcript"
  exit 1
fi
