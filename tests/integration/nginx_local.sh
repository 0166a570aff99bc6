#!/usr/bin/env bash
# The nginx role against a real systemd host container: routing by path, allowlists,
# actuator closed except health, no version in Server, gzip, SPA fallback, TLS, a refused
# configuration that never goes live, idempotence and check mode; then the narrow entry point
# (tasks_from: upstreams) a start-first swap calls. One line per check.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
host="h-nginx-$RANDOM$RANDOM"
work=$(mktemp -d)
image=${NGINX_TEST_IMAGE:-$("$root/.venv/bin/python" "$root/bench/images.py" ref ec2_debian12)}  # bench/images.yml
cleanup() {  # NGINX_TEST_KEEP=1 leaves the host running for a look inside
  if [ "${NGINX_TEST_KEEP:-0}" = 1 ]; then echo "host kept: $host"; else docker rm -f "$host" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
pass() { printf 'ok    %s\n' "$1"; }
fail() { printf 'FAIL  %s\n' "$1"; [ $# -lt 2 ] || printf '      %s\n' "$2"; failures=$((failures + 1)); }
check() {  # check <description> <command...>: pass when the command succeeds
  local what=$1; shift
  if out=$("$@" 2>&1); then pass "$what"; else fail "$what" "$out"; fi
}
on_host() { docker exec "$host" "$@"; }
# status <path> [curl options...]: HTTP status of a request to the site from inside the host
status() { local p=$1; shift; on_host curl -s -o /dev/null -w '%{http_code}' "$@" "http://127.0.0.1$p"; }
expect_status() {  # expect_status <code> <path> [curl options...]
  local code=$1 p=$2; shift 2
  local got; got=$(status "$p" "$@")
  if [ "$got" = "$code" ]; then pass "$p answers $code"; else fail "$p answers $code" "got $got"; fi
}
expect_backend() {  # expect_backend <backend> <path>: the request reached that backend, path intact
  local want=$1 p=$2 body
  body=$(on_host curl -s "http://127.0.0.1$p" | head -n 1)
  if [ "$body" = "backend=$want path=$p" ]; then pass "$p reaches $want"; else fail "$p reaches $want" "got: $body"; fi
}
changed_count() { sed -n 's/.*changed=\([0-9]*\).*/\1/p' <<<"$1" | head -n 1; }

# --- the host -------------------------------------------------------------------------------
docker run -d --name "$host" --cap-add SYS_ADMIN --cap-add NET_ADMIN \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cgroupns host \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp "$image" >/dev/null
for _ in $(seq 1 30); do
  state=$(on_host systemctl is-system-running 2>/dev/null || true)
  case $state in running|degraded) break ;; esac
  sleep 1
done

# Echo backends on loopback (bench setup, not under test): each answers with its name and
# the path it received, padded so that gzip has something to compress. gateway-next plays
# the new container a start-first swap starts next to the old one.
docker exec -i "$host" sh -c 'cat > /usr/local/bin/echo-backend' <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, PORT = sys.argv[1], int(sys.argv[2])


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        # /nope/... plays a missing S3 key, .../unavailable/... a gateway with no instance of the
        # service behind it (503); the rest answer 200.
        code = 404 if self.path.startswith("/nope/") else 503 if "/unavailable/" in self.path else 200
        body = "backend={0} path={1}\n{2}\n".format(NAME, self.path, "x" * 2048).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Echo).serve_forever()
PY
on_host systemd-run --quiet --unit echo-gateway python3 /usr/local/bin/echo-backend gateway 18080
on_host systemd-run --quiet --unit echo-auth python3 /usr/local/bin/echo-backend auth 19000
on_host systemd-run --quiet --unit echo-gateway-next python3 /usr/local/bin/echo-backend gateway-next 18081
on_host sh -c 'command -v curl >/dev/null || { apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y curl >/dev/null; }'

# --- the playbook and its inputs ---------------------------------------------------------------
cat > "$work/hosts.yml" <<EOF
all:
  hosts:
    $host:
      ansible_connection: community.docker.docker
      ansible_python_interpreter: /usr/bin/python3
EOF
cat > "$work/play.yml" <<'EOF'
---
- name: Put Nginx in front of the stack
  hosts: all
  gather_facts: true
  roles:
    - role: sgivu.deploy.nginx
EOF
# The narrow entry point as compose_stack's swap calls it: no facts, only the upstreams.
cat > "$work/swap.yml" <<'EOF'
---
- name: Send a service's traffic to other servers
  hosts: all
  gather_facts: false
  tasks:
    - name: Rewrite the upstreams, test them and reload Nginx
      ansible.builtin.include_role:
        name: sgivu.deploy.nginx
        tasks_from: upstreams
EOF
# The routes come from a catalog through the role's default (sgivu.deploy.catalog_routes).
cat > "$work/good.yml" <<'EOF'
---
stack_name: bench
stack_services:
  gateway: {image: bench/gateway, tag: "1", port: 18080, public: true, health: {path: /actuator/health}}
  auth: {image: bench/auth, tag: "1", port: 19000, public: true, health: {path: /actuator/health}}
  discovery: {image: bench/discovery, tag: "1", port: 8761, public: true, health: {path: /actuator/health}}
  zipkin: {image: bench/zipkin, tag: "1", port: 9411, public: true, enabled: false, health: {path: /health}}
stack_routes:
  - {path: /v1/, service: gateway, timeout: 30}
  - {path: /auth/session, match: exact, service: gateway}
  - {path: /login, service: auth}
  - {path: '^/\.well-known/[a-z-]+$', match: regex, service: auth}
  - {path: /eureka/, service: discovery, allow: [10.255.255.1/32]}
  - {path: /zipkin/, service: zipkin, allow: [10.255.255.1/32]}
nginx_upstreams:
  gateway: ["127.0.0.1:18080"]
  auth: ["127.0.0.1:19000"]
  discovery: ["127.0.0.1:19000"]
nginx_spa_mode: local
EOF
sed 's/"127.0.0.1:19000"]$/"bad address"]/' "$work/good.yml" > "$work/bad.yml"
grep -q 'bad address' "$work/bad.yml"
printf '%s\n' 'nginx_upstreams: {gateway: ["127.0.0.1:18080"]}' > "$work/missing.yml"

playbook() {  # playbook <playbook> <vars file> [ansible-playbook options...]
  local book=$1 vars=$2; shift 2
  (cd "$root" && ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 \
    ansible-playbook -i "$work/hosts.yml" -e "@$work/$vars" "$@" "$work/$book" 2>&1)
}
play() { playbook play.yml "$@"; }  # play <vars file> [options...]: the whole role
swap() { playbook swap.yml "$@"; }  # swap <vars file> [options...]: the upstreams only
# The drift entry point as a deploy with nothing else to change runs it: prints nginx_drift,
# followed by "upstreams only" when it publishes nginx_drift_upstreams_only (a deploy's
# transaction then rewrites the upstreams through the narrow entry, not the whole role).
cat > "$work/drift.yml" <<'EOF'
---
- name: Read how Nginx differs from what the role leaves
  hosts: all
  gather_facts: true
  tasks:
    - name: Read Nginx
      ansible.builtin.include_role:
        name: sgivu.deploy.nginx
        tasks_from: drift
    - name: Write what differs on the controller
      ansible.builtin.copy:
        content: "{{ nginx_drift | to_json }}{{ ' upstreams only' if nginx_drift_upstreams_only else '' }}"
        dest: "{{ drift_file }}"
        mode: "0600"
      delegate_to: localhost
EOF
drift() {  # drift <vars file> [options...]: nginx_drift as JSON [upstreams only]
  rm -f "$work/drift.json"
  playbook drift.yml "$@" -e "drift_file=$work/drift.json" >/dev/null
  cat "$work/drift.json" 2>/dev/null || echo "(the drift entry failed)"
}

# --- check mode on a fresh host, then the first run ----------------------------------------------
if out=$(play good.yml --check); then pass "check mode on a fresh host passes"; else
  fail "check mode on a fresh host passes" "$(tail -n 15 <<<"$out")"; fi
if out=$(play good.yml); then pass "first run applies the role"; else
  fail "first run applies the role" "$out"; echo "$failures check(s) failed"; exit 1; fi
on_host sh -c 'echo "<html>spa</html>" > /var/www/spa/index.html'

expect_backend gateway /v1/users/42
expect_backend gateway /auth/session
expect_backend auth /login
expect_backend auth /.well-known/openid-configuration
expect_status 403 /eureka/apps
check "/zipkin/ (route to a disabled service) is left out: the SPA answers" \
  sh -c "docker exec $host curl -s http://127.0.0.1/zipkin/ | grep -q '<html>spa</html>'"
check "/anything/deep serves the SPA's index.html" \
  sh -c "docker exec $host curl -s http://127.0.0.1/anything/deep | grep -q '<html>spa</html>'"

# --- actuator -------------------------------------------------------------------------------------
expect_status 403 /actuator/env
expect_status 403 /v1/actuator/env
expect_status 403 /v1/actuator
expect_status 403 /v1/actuator/
expect_status 403 /V1/ACTUATOR/ENV
expect_status 403 '/v1/actuator/health/..;/env'
expect_status 403 '/v1/actuator;x=y/env'
expect_status 403 /v1/actuator/healthdump
expect_status 403 /v1/%61ctuator/env
expect_backend gateway /v1/actuator/health
expect_backend gateway /v1/actuator/health/liveness

# --- headers ------------------------------------------------------------------------------------
server=$(on_host curl -s -o /dev/null -D - http://127.0.0.1/v1/x | tr -d '\r' | sed -n 's/^[Ss]erver: //p')
if [ "$server" = "nginx" ]; then pass "Server header carries no version ($server)"; else
  fail "Server header carries no version" "got: $server"; fi
enc=$(on_host curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' http://127.0.0.1/v1/x | tr -d '\r' \
  | sed -n 's/^[Cc]ontent-[Ee]ncoding: //p')
if [ "$enc" = "gzip" ]; then pass "responses are gzipped when the client asks"; else
  fail "responses are gzipped when the client asks" "Content-Encoding: $enc"; fi
enc=$(on_host curl -s -o /dev/null -D - http://127.0.0.1/v1/x | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ee]ncoding: //p')
if [ -z "$enc" ]; then pass "responses are plain when the client does not ask"; else
  fail "responses are plain when the client does not ask" "Content-Encoding: $enc"; fi

# --- the upstream log: what the bake window of a new release reads ---------------------------------
on_host curl -s -o /dev/null http://127.0.0.1/v1/baked
on_host curl -s -o /dev/null http://127.0.0.1/eureka/apps
logged=$(on_host sh -c 'grep -F "\"upstream\":\"127.0.0.1:18080\"" /var/log/nginx/bench.upstream.log | tail -n 1')
if python3 -c 'import json, sys; e = json.loads(sys.argv[1]); assert e["status"] == 200 and float(e["upstream_time"]) >= 0 and e["time"] > 1.7e9, e' "$logged" 2>/dev/null
then pass "a proxied request is logged as JSON with the gateway's address, its status and upstream time"
else fail "a proxied request is logged as JSON with the gateway's address, its status and upstream time" "got: $logged"; fi
if on_host grep -Eq '"upstream":"-?".*"status":403' /var/log/nginx/bench.upstream.log; then
  pass "a request Nginx refused itself is logged with no upstream (never counted for a release)"
else fail "a request Nginx refused itself is logged with no upstream" "$(on_host tail -n 3 /var/log/nginx/bench.upstream.log)"; fi
if on_host grep -q 'GET /v1/baked' /var/log/nginx/access.log; then pass "the usual access log is still written"
else fail "the usual access log is still written"; fi

# --- idempotence and check mode ---------------------------------------------------------------------
out=$(play good.yml) || true
n=$(changed_count "$out")
if [ "$n" = "0" ]; then pass "second run changes nothing"; else fail "second run changes nothing" "changed=$n"; fi
out=$(play good.yml --check --diff) || true
n=$(changed_count "$out")
if [ "$n" = "0" ]; then pass "check mode on a converged host reports nothing"; else
  fail "check mode on a converged host reports nothing" "changed=$n"; fi

# --- a missing upstream is refused before anything is written ------------------------------------------
if out=$(play good.yml -e "@$work/missing.yml"); then fail "a route without an upstream fails the play" "the play passed"
elif grep -q 'nginx_upstreams has no servers for auth, discovery' <<<"$out"; then
  pass "a route without an upstream fails the play, naming the services"
else fail "a route without an upstream fails the play, naming the services" "$(tail -n 15 <<<"$out")"; fi

# --- a configuration nginx -t refuses never goes live ----------------------------------------------------
before=$(on_host md5sum /etc/nginx/conf.d/bench.conf)
if out=$(play bad.yml); then fail "an invalid upstream fails the play" "the play passed"
elif grep -q 'invalid parameter "address"' <<<"$out"; then pass "an invalid upstream fails the play with nginx -t's message"
else fail "an invalid upstream fails the play with nginx -t's message" "$(tail -n 15 <<<"$out")"; fi
after=$(on_host md5sum /etc/nginx/conf.d/bench.conf)
if [ "$before" = "$after" ]; then pass "the refused site file was put back"; else fail "the refused site file was put back"; fi
check "no backup file is left in conf.d" sh -c "! docker exec $host sh -c 'ls /etc/nginx/conf.d' | grep -q '~'"
check "the configuration on disk still passes nginx -t" docker exec "$host" nginx -t -q
expect_backend gateway /v1/still-serving
expect_backend auth /login
out=$(play good.yml) || true
n=$(changed_count "$out")
if [ "$n" = "0" ]; then pass "a run after the refusal changes nothing"; else
  fail "a run after the refusal changes nothing" "changed=$n"; fi

# --- the narrow entry point: the upstreams file only, tested, then a reload ------------------------------
ups=/etc/nginx/conf.d/bench-upstreams.conf site=/etc/nginx/conf.d/bench.conf
check "the site defines no upstream: they are in their own file" \
  sh -c "! docker exec $host grep -q '^upstream' $site && docker exec $host grep -q '^upstream bench__gateway {' $ups"
out=$(swap good.yml) || true
n=$(changed_count "$out")
if [ "$n" = "0" ]; then pass "the narrow entry after the whole role changes nothing"; else
  fail "the narrow entry after the whole role changes nothing" "changed=$n"; fi
# The swap: gateway-next answers, the old gateway stays in as a backup while it retires.
sed 's/gateway: \["127.0.0.1:18080"\]/gateway: ["127.0.0.1:18081", "127.0.0.1:18080 backup"]/' "$work/good.yml" > "$work/next.yml"
grep -q '18081' "$work/next.yml"
site_before=$(on_host md5sum $site)
if out=$(swap next.yml); then pass "the narrow entry moves gateway to gateway-next"; else
  fail "the narrow entry moves gateway to gateway-next" "$(tail -n 15 <<<"$out")"; fi
printf '      (%s tasks shown, %s)\n' "$(grep -c '^TASK ' <<<"$out")" "$(grep -o 'ok=[0-9]* *changed=[0-9]*' <<<"$out")"
if grep -Eq '^TASK \[sgivu.deploy.nginx : (install|preflight|configure|service) ' <<<"$out"; then
  fail "the narrow entry runs no install, site check or site render" "$(grep '^TASK' <<<"$out")"
else pass "the narrow entry runs no install, site check or site render"; fi
expect_backend gateway-next /v1/right-after-the-swap
check "the server being retired stays in the upstream as a backup" \
  docker exec "$host" grep -q 'server 127.0.0.1:18080 backup;' $ups
if [ "$(on_host md5sum $site)" = "$site_before" ]; then pass "the narrow entry leaves the site file alone"; else
  fail "the narrow entry leaves the site file alone"; fi
out=$(swap next.yml) || true
n=$(changed_count "$out")
if [ "$n" = "0" ]; then pass "a second identical narrow run changes nothing"; else
  fail "a second identical narrow run changes nothing" "changed=$n"; fi
# A swap asks for a reload even with the same file: Nginx's workers are replaced (new PIDs), so
# none keeps the failure marks of connections refused before the new backend started.
workers_before=$(on_host pgrep -d, -f 'nginx: worker process')
file_before=$(on_host md5sum $ups)
out=$(swap next.yml -e nginx_upstreams_reload=true) || true
workers_after=$(on_host pgrep -d, -f 'nginx: worker process')
if [ "$(changed_count "$out")" = "1" ] && [ -n "$workers_after" ] && [ "$workers_before" != "$workers_after" ] \
   && [ "$(on_host md5sum $ups)" = "$file_before" ]; then
  pass "the narrow entry with nginx_upstreams_reload reloads Nginx on the same file"
else fail "the narrow entry with nginx_upstreams_reload reloads Nginx on the same file" \
  "changed=$(changed_count "$out") workers $workers_before -> $workers_after"; fi
expect_backend gateway-next /v1/after-the-forced-reload
# Nginx keeps its connection to an upstream for the next request, and ends it itself once it has been
# idle for nginx_upstream_keepalive_timeout (2 s here; 50 s by default, under Tomcat's own 60 s).
upstream_connections() {  # Nginx's established connections to gateway-next (127.0.0.1:18081)
  on_host awk -v port=":$(printf '%04X' 18081)" 'substr($3, length($3) - 4) == port && $4 == "01"' /proc/net/tcp | wc -l
}
out=$(swap next.yml -e nginx_upstream_keepalive_timeout=2 -e nginx_upstreams_reload=true) || true
on_host curl -s -o /dev/null http://127.0.0.1/v1/keep-alive
sleep 0.5
kept=$(upstream_connections)
sleep 3
left=$(upstream_connections)
if [ "$kept" -ge 1 ] && [ "$left" = 0 ]; then
  pass "Nginx keeps its upstream connection, and ends it itself after nginx_upstream_keepalive_timeout"
else fail "Nginx keeps its upstream connection, and ends it itself after nginx_upstream_keepalive_timeout" \
  "established: $kept after 0.5 s, $left after 3.5 s; $(on_host grep keepalive $ups | tr -s ' ' | tr '\n' ' ')"; fi
out=$(swap next.yml -e nginx_upstreams_reload=true) || true
expect_backend gateway-next /v1/after-the-keep-alive
# A 503 the gateway answers itself (no instance of a service behind it) reaches the client from
# that gateway, not retried on the retiring one; the gateway's other routes are served at once, not
# "no live upstreams" for fail_timeout (Nginx marks a server failed on what proxy_next_upstream lists).
body=$(on_host curl -s http://127.0.0.1/v1/unavailable/users | head -n 1)
check "a 503 of the gateway reaches the client from that gateway, not retried on the retiring one" \
  test "$body" = "backend=gateway-next path=/v1/unavailable/users"
expect_status 503 /v1/unavailable/users
expect_backend gateway-next /v1/right-after-a-503
ups_before=$(on_host md5sum $ups)
out=$(swap good.yml --check) || true
n=$(changed_count "$out")
if [ "${n:-0}" != "0" ] && [ "$(on_host md5sum $ups)" = "$ups_before" ]; then
  pass "the narrow entry in check mode reports the change and writes nothing"
else fail "the narrow entry in check mode reports the change and writes nothing" "changed=$n"; fi

# A server that would break out of its directive: refused before anything is written.
sed 's/"127.0.0.1:18081"/"127.0.0.1:18081; server 10.255.255.1:80"/' "$work/next.yml" > "$work/unsafe.yml"
grep -q '10.255.255.1:80' "$work/unsafe.yml"
if out=$(swap unsafe.yml); then fail "an upstream with ; fails the narrow entry" "the play passed"
elif grep -q 'without ; { } # quotes or line breaks: 127.0.0.1:18081; server 10.255.255.1:80' <<<"$out"; then
  pass "an upstream with ; fails the narrow entry, naming the server"
else fail "an upstream with ; fails the narrow entry, naming the server" "$(tail -n 15 <<<"$out")"; fi
if grep -q '^TASK \[sgivu.deploy.nginx : write_and_test' <<<"$out"; then
  fail "the refused server is caught before anything is written" "$(grep '^TASK' <<<"$out")"
else pass "the refused server is caught before anything is written"; fi
if [ "$(on_host md5sum $ups)" = "$ups_before" ]; then pass "the upstreams file is still the previous one"; else
  fail "the upstreams file is still the previous one"; fi
expect_backend gateway-next /v1/after-the-unsafe-server

# A server nginx -t refuses: the previous upstreams file is put back, Nginx keeps serving.
sed 's/"127.0.0.1:18081"/"bad address"/' "$work/next.yml" > "$work/next-bad.yml"
grep -q 'bad address' "$work/next-bad.yml"
if out=$(swap next-bad.yml); then fail "an invalid upstream fails the narrow entry" "the play passed"
elif grep -q 'invalid parameter "address"' <<<"$out" && grep -q 'Nginx keeps serving the previous configuration' <<<"$out"
then pass "an invalid upstream fails the narrow entry with nginx -t's message"
else fail "an invalid upstream fails the narrow entry with nginx -t's message" "$(tail -n 15 <<<"$out")"; fi
if [ "$(on_host md5sum $ups)" = "$ups_before" ]; then pass "the refused upstreams file was put back"; else
  fail "the refused upstreams file was put back"; fi
check "no backup file is left in conf.d after the narrow refusal" \
  sh -c "! docker exec $host sh -c 'ls /etc/nginx/conf.d' | grep -q '~'"
expect_backend gateway-next /v1/after-the-refusal

# Back to the first gateway; the whole role then agrees with what the narrow entry wrote.
if out=$(swap good.yml); then pass "the narrow entry moves gateway back"; else
  fail "the narrow entry moves gateway back" "$(tail -n 15 <<<"$out")"; fi
expect_backend gateway /v1/back-again
out=$(play good.yml) || true
n=$(changed_count "$out")
if [ "$n" = "0" ]; then pass "the whole role after the narrow entry changes nothing"; else
  fail "the whole role after the narrow entry changes nothing" "changed=$n"; fi

# A site written before the upstreams had a file of their own still defines them: the
# narrow entry is refused with a hint, and the whole role moves them to their file.
on_host sh -c "cat $ups >> $site && rm $ups && nginx -t -q && systemctl reload nginx"
if out=$(swap next.yml); then fail "the narrow entry on a site of the old layout fails" "the play passed"
elif grep -q 'duplicate upstream' <<<"$out" && grep -q 'run the whole nginx role' <<<"$out"; then
  pass "the narrow entry on a site of the old layout fails, saying to run the whole role"
else fail "the narrow entry on a site of the old layout fails, saying to run the whole role" "$(tail -n 15 <<<"$out")"; fi
check "the refused upstreams file, new on that host, was removed" sh -c "! docker exec $host test -e $ups"
expect_backend gateway /v1/old-layout
if out=$(play good.yml); then pass "the whole role moves the upstreams of an old site to their file"; else
  fail "the whole role moves the upstreams of an old site to their file" "$(tail -n 15 <<<"$out")"; fi
check "the site defines no upstream after the move" sh -c "! docker exec $host grep -q '^upstream' $site"
expect_backend gateway /v1/new-layout

# --- SPA from an S3 website endpoint (played by the auth echo backend) ----------------------------------
printf '%s\n' 'nginx_spa_mode: s3' 'nginx_spa_s3_website_endpoint: "http://127.0.0.1:19000/"' > "$work/s3-no-resolver.yml"
site_before=$(on_host sha256sum "$site")
if out=$(play good.yml -e "@$work/s3-no-resolver.yml"); then
  fail "the SPA on S3 without a resolver is refused" "the run succeeded"
elif grep -q "nginx_spa_mode=s3 needs nginx_resolvers" <<<"$out"; then pass "the SPA on S3 without a resolver is refused"
else fail "the SPA on S3 without a resolver is refused" "$(tail -n 15 <<<"$out")"; fi
check "the refused S3 settings left the site as it was" test "$(on_host sha256sum "$site")" = "$site_before"
# An endpoint with a line break after it would end the proxy_pass directive early: refused too.
printf '%s\n' 'nginx_spa_mode: s3' 'nginx_spa_s3_website_endpoint: "http://127.0.0.1:19000/\n"' \
  'nginx_resolvers: ["127.0.0.53"]' > "$work/s3-newline.yml"
if out=$(play good.yml -e "@$work/s3-newline.yml"); then
  fail "an S3 endpoint with a trailing line break is refused" "the run succeeded"
elif grep -q "nginx_spa_mode=s3 needs nginx_spa_s3_website_endpoint, a URL with no path" <<<"$out"; then
  pass "an S3 endpoint with a trailing line break is refused"
else fail "an S3 endpoint with a trailing line break is refused" "$(tail -n 15 <<<"$out")"; fi
# Inputs a hostile trial got past the checks (helper-32): a log Nginx, as root, would append to
# anywhere (/etc/passwd through ..), a resolver that ends the directive, TLS files that are not there.
refusals=(
  'nginx_upstream_log: /var/log/../../etc/passwd|nginx_upstream_log must be a file in /var/log/nginx/'
  'nginx_upstream_log: /etc/passwd|nginx_upstream_log must be a file in /var/log/nginx/'
  "nginx_upstream_log: /var/log/nginx/$(printf 'x%.0s' {1..300})|nginx_upstream_log must be a file in /var/log/nginx/"
  'nginx_resolvers: ["169.254.169.253;"]|nginx_resolvers entries are addresses or host names'
  'nginx_actuator_health_paths: ["health", "info\n"]|nginx_actuator_health_paths entries are endpoint names'
  'nginx_tls_enabled: true|nginx_tls_certificate: /nonexistent/fullchain.pem|nginx_tls_certificate_key: /nonexistent/privkey.pem|not found: /nonexistent/fullchain.pem, /nonexistent/privkey.pem'
  # helper-33: values the site template writes as given, each carrying a directive that went
  # live, a log Nginx would append to as root, and values that fail `nginx -t` after the write.
  'nginx_server_name: "_; return 418"|nginx_server_name is one or more host names'
  'nginx_client_max_body_size: "10m; return 422"|nginx_client_max_body_size is a size such as 10m'
  'nginx_forwarded_proto: "$scheme; add_header X-Injected 1"|nginx_forwarded_proto is http, https, $scheme or a request header'
  'nginx_real_ip_from: ["0.0.0.0/0; return 424", "10.0.0.0/255.0.0.0"]|not one: '"'0.0.0.0/0; return 424', '10.0.0.0/255.0.0.0'"
  'nginx_spa_mode: local|nginx_spa_root: "/var/www/spa; autoindex on"|nginx_spa_mode=local serves nginx_spa_root to anyone'
  'nginx_spa_mode: local|nginx_spa_root: /|must be a directory below /var/www, /srv, /opt or /usr/share/nginx'
  'nginx_spa_mode: s3|nginx_spa_s3_website_endpoint: "http://$http_x_t"|nginx_resolvers: ["127.0.0.53"]|a URL with no path'
  'nginx_upstream_log: /var/log/README|nginx_upstream_log must be a file in /var/log/nginx/'
  'nginx_listen_http: -1|nginx_listen_http must be a whole number of a port, 1-65535, got -1'
  'nginx_site_name: "x;y"|nginx_site_name names the files'
  'nginx_routes: [{"path": "/v1/", "service": "gateway", "timeout": 100000000000000000000}, {"path": "/login", "service": "auth", "allow": ["10.0.0.0/8; return 200"]}]|nginx_routes #1: timeout must be a whole number of seconds, 1-3600'
)
for case in "${refusals[@]}"; do
  IFS='|' read -r -a parts <<<"$case"
  expected=${parts[-1]}
  printf '%s\n' "${parts[@]:0:${#parts[@]}-1}" > "$work/refused.yml"
  if out=$(play good.yml -e "@$work/refused.yml"); then fail "refused: ${parts[0]:0:60}" "the run succeeded"
  elif grep -qF -- "$expected" <<<"$out" && grep -qF "Nothing was changed." <<<"$out"; then pass "refused: ${parts[0]:0:60}"
  else fail "refused: ${parts[0]:0:60}" "$(tail -n 15 <<<"$out")"; fi
done
check "the refused inputs left the site as it was" test "$(on_host sha256sum "$site")" = "$site_before"
# A port another program holds passes nginx -t, and the reload keeps the old configuration (helper-34).
if out=$(play good.yml -e nginx_listen_http=18080); then fail "a port the gateway backend holds is refused" "the run succeeded"
elif grep -q "Another program listens where the site would (nginx_listen_http: 18080): port 18080 by python3" <<<"$out" \
   && grep -qF "Nothing was changed." <<<"$out"; then pass "a port the gateway backend holds is refused"
else fail "a port the gateway backend holds is refused" "$(tail -n 15 <<<"$out")"; fi
check "the refused port left the site as it was" test "$(on_host sha256sum "$site")" = "$site_before"
# The narrow entry checks what it writes from: a site name with a line break added a live server
# block, and one with ../ wrote into sites-enabled/ (helper-34).
printf '%s\n' 'nginx_site_name: "bench\nserver { listen 8097; return 420; }\n#"' > "$work/bad-site-name.yml"
if out=$(swap good.yml -e "@$work/bad-site-name.yml"); then fail "the narrow entry refuses a site name with a line break" "the run succeeded"
elif grep -q "nginx_site_name names the files" <<<"$out"; then pass "the narrow entry refuses a site name with a line break"
else fail "the narrow entry refuses a site name with a line break" "$(tail -n 15 <<<"$out")"; fi
if out=$(swap good.yml -e nginx_site_name=../sites-enabled/evil); then fail "the narrow entry refuses a site name with ../" "the run succeeded"
elif grep -q "nginx_site_name names the files" <<<"$out"; then pass "the narrow entry refuses a site name with ../"
else fail "the narrow entry refuses a site name with ../" "$(tail -n 15 <<<"$out")"; fi
check "no file was written outside conf.d" sh -c "! docker exec $host sh -c 'ls /etc/nginx/sites-enabled/ /etc/nginx/conf.d/' | grep -q -e evil -e 420"
if out=$(swap good.yml -e '{"nginx_routes": null}'); then fail "the narrow entry refuses null routes naming them" "the run succeeded"
elif grep -q "nginx_routes is a list of routes, got None" <<<"$out"; then pass "the narrow entry refuses null routes naming them"
else fail "the narrow entry refuses null routes naming them" "$(tail -n 15 <<<"$out")"; fi
if out=$(swap good.yml -e '{"nginx_upstreams": {"gateway": [null], "auth": [""], "discovery": ["127.0.0.1:19000\u2028"]}}'); then
  fail "the narrow entry refuses upstream servers that are not printable strings" "the run succeeded"
elif grep -q 'nginx_upstreams entries must be "host:port" strings' <<<"$out"; then
  pass "the narrow entry refuses upstream servers that are not printable strings"
else fail "the narrow entry refuses upstream servers that are not printable strings" "$(tail -n 15 <<<"$out")"; fi
check "the refused narrow runs left the site as it was" test "$(on_host sha256sum "$site")" = "$site_before"
# -e gives strings: "false" is a switch turned off, not a non-empty string (helper-33: it turned TLS on).
if out=$(play good.yml -e nginx_tls_enabled=false -e nginx_gzip=true -e nginx_listen_http=80) \
   && [ "$(changed_count "$out")" = 0 ]; then pass "switches and ports given as strings with -e change nothing"
else fail "switches and ports given as strings with -e change nothing" "$(tail -n 15 <<<"$out")"; fi
printf '%s\n' 'nginx_spa_mode: s3' 'nginx_spa_s3_website_endpoint: "http://127.0.0.1:19000/"' \
  'nginx_resolvers: ["127.0.0.53"]' > "$work/s3.yml"
if out=$(play good.yml -e "@$work/s3.yml"); then pass "a run with the SPA on S3 applies"; else
  fail "a run with the SPA on S3 applies" "$(tail -n 15 <<<"$out")"; fi
expect_backend auth /app/orders/7
body=$(on_host curl -s http://127.0.0.1/nope/deep-link | head -n 1)
if [ "$body" = "backend=auth path=/index.html" ] && [ "$(status /nope/deep-link)" = 200 ]; then
  pass "a path S3 does not hold falls back to /index.html with 200"
else fail "a path S3 does not hold falls back to /index.html with 200" "got: $body"; fi
expect_backend gateway /v1/with-s3

# --- TLS --------------------------------------------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench.local \
  -keyout "$work/tls.key" -out "$work/tls.crt" >/dev/null 2>&1
cat > "$work/tls.yml" <<EOF
---
nginx_tls_enabled: true
nginx_tls_certificate: $work/tls.crt
nginx_tls_certificate_key: $work/tls.key
EOF
if out=$(play good.yml -e "@$work/tls.yml" --diff); then pass "a run with TLS applies"; else fail "a run with TLS applies" "$(tail -n 15 <<<"$out")"; fi
if grep -q 'BEGIN PRIVATE KEY' <<<"$out"; then fail "the private key stays out of the output"; else
  pass "the private key stays out of the output"; fi
check "the private key is root:root 0600" \
  sh -c "[ \"\$(docker exec $host stat -c '%U:%G %a' /etc/nginx/tls/bench.key)\" = 'root:root 600' ]"
expect_status 301 /v1/x
body=$(on_host curl -sk https://127.0.0.1/v1/tls | head -n 1)
if [ "$body" = "backend=gateway path=/v1/tls" ]; then pass "HTTPS routes /v1/tls to gateway"; else
  fail "HTTPS routes /v1/tls to gateway" "got: $body"; fi
# SECLEVEL=0 lets the client offer TLS 1.1, which Debian's nginx.conf still enables; only
# ssl_protocols makes the server answer with a protocol-version alert (else: internal error).
check "TLS 1.1 is refused for its version" sh -c "docker exec $host openssl s_client -connect 127.0.0.1:443 \
  -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null 2>&1 | grep -q 'alert protocol version'"
check "TLS 1.2 is accepted" sh -c "docker exec $host openssl s_client -connect 127.0.0.1:443 -tls1_2 \
  </dev/null >/dev/null 2>&1"
out=$(play good.yml -e "@$work/tls.yml") || true
n=$(changed_count "$out")
if [ "$n" = "0" ]; then pass "second run with TLS changes nothing"; else fail "second run with TLS changes nothing" "changed=$n"; fi

# --- drift: what a deploy with nothing else to change reads ---------------------------------------------
got=$(drift good.yml -e "@$work/tls.yml")
if [ "$got" = "[]" ]; then pass "drift finds nothing after the role ran (TLS, local SPA)"; else
  fail "drift finds nothing after the role ran (TLS, local SPA)" "got: $got"; fi
# Docker gave a restarted container the next port of its range: the upstreams file alone differs.
moved='{"nginx_upstreams": {"gateway": ["127.0.0.1:18081"], "auth": ["127.0.0.1:19000"], "discovery": ["127.0.0.1:19000"]}}'
got=$(drift good.yml -e "@$work/tls.yml" -e "$moved")
want='["not as the deploy writes them: /etc/nginx/conf.d/bench-upstreams.conf"] upstreams only'
if [ "$got" = "$want" ]; then pass "drift says when the upstreams file is all that differs"; else
  fail "drift says when the upstreams file is all that differs" "got: $got"; fi
# Stopped as well: the whole role, which starts it, not the narrow entry, whose reload would fail.
on_host systemctl stop nginx
got=$(drift good.yml -e "@$work/tls.yml" -e "$moved")
want='["Nginx is inactive, not active", "not as the deploy writes them: /etc/nginx/conf.d/bench-upstreams.conf"]'
if [ "$got" = "$want" ]; then pass "drift does not say upstreams only of a stopped Nginx"; else
  fail "drift does not say upstreams only of a stopped Nginx" "got: $got"; fi
on_host systemctl start nginx
# A publisher's rsync -a sets the SPA root's mode: not drift, or every no-op deploy would change the host.
on_host chmod 0775 /var/www/spa
got=$(drift good.yml -e "@$work/tls.yml")
if [ "$got" = "[]" ]; then pass "drift leaves the SPA root's mode to its publisher"; else
  fail "drift leaves the SPA root's mode to its publisher" "got: $got"; fi
on_host chmod 0755 /var/www/spa
on_host sh -c 'chmod 0644 /etc/nginx/tls/bench.key && echo "# by hand" >> /etc/nginx/conf.d/bench-upstreams.conf && systemctl stop nginx'
got=$(drift good.yml -e "@$work/tls.yml")
want='["Nginx is inactive, not active", "not as the deploy writes them: /etc/nginx/conf.d/bench-upstreams.conf, /etc/nginx/tls/bench.key"]'
if [ "$got" = "$want" ]; then pass "drift names a stopped Nginx, an edited upstreams file and a readable key"; else
  fail "drift names a stopped Nginx, an edited upstreams file and a readable key" "got: $got"; fi
out=$(play good.yml -e "@$work/tls.yml") || true
got=$(drift good.yml -e "@$work/tls.yml")
if [ "$got" = "[]" ]; then pass "the whole role repairs what drift named"; else fail "the whole role repairs what drift named" "got: $got"; fi

if [ "$failures" -gt 0 ]; then echo "$failures check(s) failed"; exit 1; fi
echo "nginx role: all checks passed"
