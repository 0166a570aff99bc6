#!/usr/bin/env bash
# End to end: the sgivu.deploy.ssm_secrets role against a real Parameter Store API (moto in
# server mode on 127.0.0.1, started and stopped here), applied to localhost. No Docker, and
# nothing can reach AWS: the credentials are dummies and every call goes to the moto endpoint.
# Prints one line per check; exits non-zero when any check fails.
# Needs ansible-playbook, moto_server and the bundled amazon.aws/community.aws on PATH
# (the bench's .venv). Runs as root: the role writes the env file root:root.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
moto_pid=""
cleanup() {
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

for tool in ansible-playbook moto_server python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not on PATH (activate the bench's .venv)" >&2; exit 1; }
done

# --- an AWS that is not AWS ----------------------------------------------------------------
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_SSM || true
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
python3 - "$endpoint" <<'PY' || { echo "FAIL: moto_server did not answer on $endpoint" >&2; cat "$work/moto.log" >&2; exit 1; }
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY

export ANSIBLE_CONFIG="$root/ansible.cfg"   # resolves sgivu.deploy to this working copy
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false ANSIBLE_NOCOLOR=true

# --- the stack, its parameters and the two playbooks ---------------------------------------
path=/sgivu/e2e
env_file="$work/stack/stack.env.next"
issuer="https://e2e-issuer.example.test"
declare -A secret=(
  [POSTGRES_PASSWORD]='pg e2e $ecret#1 "x" \n it'"'"'s ${HOME} `id` \'
  [REDIS_PASSWORD]='redis-e2e-Secret-7f1c'
  [SERVICE_INTERNAL_SECRET_KEY]='internal-e2e-Secret-91aa'
)
other_internal='internal-e2e-Secret-OTHER-0b0b'
other_auth='https://e2e-other-auth.example.test'

cat >"$work/stack.json" <<JSON
{
  "stack_name": "e2e",
  "stack_services": {
    "db": {"image": "r/db", "tag": "1", "port": 5432, "kind": "database",
           "health": {"command": ["true"]}, "env_keys": ["POSTGRES_PASSWORD"]},
    "cache": {"image": "r/cache", "tag": "1", "port": 6379, "kind": "database",
              "health": {"command": ["true"]}, "env_keys": ["REDIS_PASSWORD"]},
    "auth": {"image": "r/auth", "tag": "1", "port": 9000, "depends_on": ["db"], "health": {"path": "/health"},
             "env_keys": ["ISSUER_URL", "POSTGRES_PASSWORD", "SERVICE_INTERNAL_SECRET_KEY"]},
    "gateway": {"image": "r/gw", "tag": "1", "port": 8080, "depends_on": ["auth", "cache"], "health": {"path": "/health"},
                "env_keys": ["REDIS_PASSWORD", "SERVICE_INTERNAL_SECRET_KEY", "SGIVU_AUTH_URL"]}
  },
  "stack_env_invariants": {"equal": [["ISSUER_URL", "SGIVU_AUTH_URL"]]}
}
JSON

cat >"$work/seed.yml" <<'YAML'
---
- name: Put parameters into the moto Parameter Store
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write or delete each parameter as a SecureString
      community.aws.ssm_parameter:
        name: "{{ item.name }}"
        value: "{{ item.value | default(omit) }}"
        string_type: SecureString
        overwrite_value: always
        state: "{{ item.state | default('present') }}"
        endpoint_url: "{{ endpoint }}"
        region: us-east-1
      loop: "{{ params }}"
      no_log: true
YAML

cat >"$work/apply.yml" <<'YAML'
---
- name: Write the stack's env file from Parameter Store
  hosts: localhost
  gather_facts: false
  become: false
  roles:
    - role: sgivu.deploy.ssm_secrets
  post_tasks:
    - name: Record the key names the role published
      ansible.builtin.copy:
        content: "{{ ssm_secrets_env_keys | to_json }}"
        dest: "{{ keys_out }}"
        mode: "0600"
YAML

seed() {  # seed <json list of {name, value, state}>
  printf '{"endpoint": "%s", "params": %s}' "$endpoint" "$1" >"$work/seed.json"
  ansible-playbook -i localhost, -c local -e 'ansible_python_interpreter={{ ansible_playbook_python }}' \
    -e "@$work/seed.json" "$work/seed.yml" >"$work/seed.out" 2>&1 \
    || { echo "FAIL: seeding moto failed:" >&2; cat "$work/seed.out" >&2; exit 1; }
}
param() {  # param <name below the path> <value>: one JSON list item
  python3 -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "value": sys.argv[2]}))' "$path/$1" "$2"
}
absent() { printf '{"name": "%s", "state": "absent"}' "$path/$1"; }

rc=0
out=""
runs=0
apply() {  # apply [ansible-playbook args...]: sets $rc and $out, keeps every output for the leak check
  runs=$((runs + 1))
  set +e
  ansible-playbook -v -i localhost, -c local -e 'ansible_python_interpreter={{ ansible_playbook_python }}' \
    -e "@$work/stack.json" -e "ssm_secrets_path=$path" -e "ssm_secrets_endpoint_url=$endpoint" \
    -e "ssm_secrets_env_file=$env_file" -e "keys_out=$work/keys.json" "$@" "$work/apply.yml" >"$work/run.$runs.out" 2>&1
  rc=$?
  set -e
  out=$(cat "$work/run.$runs.out")
}

failures=0
check() {  # check <description> <command...>
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then
    echo "PASS: $what"
  else
    echo "FAIL: $what"
    failures=$((failures + 1))
  fi
}
recap_changed() { grep -Eq "localhost +: .*changed=$1 " <<<"$out"; }
says() { grep -Fq -- "$1" <<<"$out"; }
same_file() { [ "$(sha256sum <"$env_file")" = "$1" ]; }

seed "[$(param POSTGRES_PASSWORD "${secret[POSTGRES_PASSWORD]}"), $(param REDIS_PASSWORD "${secret[REDIS_PASSWORD]}"),
       $(param SERVICE_INTERNAL_SECRET_KEY "${secret[SERVICE_INTERNAL_SECRET_KEY]}"),
       $(param sgivu-user/SERVICE_INTERNAL_SECRET_KEY "${secret[SERVICE_INTERNAL_SECRET_KEY]}"),
       $(param ISSUER_URL "$issuer"), $(param sgivu-gateway/SGIVU_AUTH_URL "$issuer")]"

# --- 1. a first run writes the file ----------------------------------------------------------
apply
check "first run succeeds" test "$rc" -eq 0
[ "$rc" -eq 0 ] || { echo "$out" >&2; }
check "first run reports changes" recap_changed '[1-9][0-9]*'
check "the env file exists" test -f "$env_file"
check "the env file is mode 0600" test "$(stat -c %a "$env_file" 2>/dev/null)" = 600
check "the env file is owned by root:root" test "$(stat -c %U:%G "$env_file" 2>/dev/null)" = root:root
check "the env file's directory is mode 0750" test "$(stat -c %a "$(dirname "$env_file")" 2>/dev/null)" = 750
expected=$(printf '%s\n' "# Managed by Ansible (sgivu.deploy.ssm_secrets); do not edit." \
  "ISSUER_URL=$issuer" "POSTGRES_PASSWORD=${secret[POSTGRES_PASSWORD]}" \
  "REDIS_PASSWORD=${secret[REDIS_PASSWORD]}" "SERVICE_INTERNAL_SECRET_KEY=${secret[SERVICE_INTERNAL_SECRET_KEY]}" \
  "SGIVU_AUTH_URL=$issuer")
check "the env file holds every value verbatim, sorted, one KEY=value line each" test "$(cat "$env_file" 2>/dev/null)" = "$expected"
check "the role publishes the key names in ssm_secrets_env_keys" \
  test "$(cat "$work/keys.json" 2>/dev/null)" = '["ISSUER_URL", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "SERVICE_INTERNAL_SECRET_KEY", "SGIVU_AUTH_URL"]'
good=$(sha256sum <"$env_file")

# --- 2. a second run changes nothing ---------------------------------------------------------
apply
check "second run succeeds with changed=0" recap_changed 0
check "second run leaves the file as it was" same_file "$good"

# --- 3. a missing key: named, file untouched ---------------------------------------------------
seed "[$(absent REDIS_PASSWORD)]"
apply
check "a missing key fails the run" test "$rc" -ne 0
check "the failure names the missing key" says "required keys missing under $path: REDIS_PASSWORD"
check "the failure says nothing on the host changed" says "nothing on the host was changed"
check "after a missing key the env file is byte-identical" same_file "$good"
seed "[$(param REDIS_PASSWORD "${secret[REDIS_PASSWORD]}")]"

# --- 4. ISSUER_URL != SGIVU_AUTH_URL: both named, file untouched ------------------------------
seed "[$(param sgivu-gateway/SGIVU_AUTH_URL "$other_auth")]"
apply
check "ISSUER_URL != SGIVU_AUTH_URL fails the run" test "$rc" -ne 0
check "the failure names ISSUER_URL and SGIVU_AUTH_URL" says "ISSUER_URL, SGIVU_AUTH_URL must hold one value, but they differ"
check "after unequal URLs the env file is byte-identical" same_file "$good"
seed "[$(param sgivu-gateway/SGIVU_AUTH_URL "$issuer")]"

# --- 5. one SERVICE_INTERNAL_SECRET_KEY for every service ------------------------------------
seed "[$(param sgivu-user/SERVICE_INTERNAL_SECRET_KEY "$other_internal")]"
apply
check "two values of SERVICE_INTERNAL_SECRET_KEY fail the run" test "$rc" -ne 0
check "the failure names SERVICE_INTERNAL_SECRET_KEY and its parameters" \
  says "SERVICE_INTERNAL_SECRET_KEY must hold one value, but its 2 parameters differ: $path/SERVICE_INTERNAL_SECRET_KEY, $path/sgivu-user/SERVICE_INTERNAL_SECRET_KEY"
check "after two internal keys the env file is byte-identical" same_file "$good"
seed "[$(param sgivu-user/SERVICE_INTERNAL_SECRET_KEY "${secret[SERVICE_INTERNAL_SECRET_KEY]}")]"

# --- 6. a path with no parameters, and an endpoint that does not answer ------------------------
apply -e ssm_secrets_path=/sgivu/nowhere
check "an empty path fails naming the path" says "Parameter Store holds no parameter under /sgivu/nowhere"
check "after an empty path the env file is byte-identical" same_file "$good"
apply -e "ssm_secrets_endpoint_url=http://127.0.0.1:1"
check "an unreachable endpoint fails with the AWS error" says 'Could not connect to the endpoint URL: "http://127.0.0.1:1/"'
check "after an AWS error the env file is byte-identical" same_file "$good"

# --- 6b. inputs refused before anything is read: a relative path, half a credential, -vvvv ---------
apply -e ssm_secrets_path=sgivu/bench
check "a relative path is refused naming ssm_secrets_path" says "ssm_secrets_path must be a Parameter Store path starting with '/'"
apply -e ssm_secrets_access_key=AKIABENCHONLY
check "an access key without its secret is refused" says "Set ssm_secrets_access_key and ssm_secrets_secret_key together"
apply -vvv
check "a run at -vvvv is refused before the lookup prints anything" says "ssm_secrets does not run at -vvvv"
check "after refused inputs the env file is byte-identical" same_file "$good"

# --- 7. back to good: the file is unchanged, and no secret was ever printed -------------------
apply
check "with the parameters restored the run succeeds with changed=0" recap_changed 0
leaked() {
  local value
  for value in "${secret[@]}" "$other_internal" "$other_auth" "$issuer"; do
    if grep -Fq -- "$value" "$work"/run.*.out "$work/seed.out"; then return 0; fi
  done
  return 1
}
check "no value appears in any ansible-playbook -v output ($runs runs)" eval '! leaked'

if [ "$failures" -gt 0 ]; then
  echo "ssm_secrets_local: $failures check(s) failed" >&2
  exit 1
fi
echo "ssm_secrets_local: every check passed"
