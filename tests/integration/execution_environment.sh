#!/usr/bin/env bash
# The execution environment definition: `ansible-builder create` (offline, downloads nothing)
# turns execution-environment.yml into a build context, and the context carries the pins of
# requirements*.txt and the collections of requirements.yml. One line per check.
# Run from anywhere with the venv on PATH (ansible-builder, python with PyYAML).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failures=0
pass() { printf 'ok    %s\n' "$1"; }
fail() { printf 'FAIL  %s\n' "$1"; [ $# -lt 2 ] || printf '      %s\n' "$2"; failures=$((failures + 1)); }
check() {  # check <description> <command...>: pass when the command succeeds
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
same() {  # same <description> <expected> <got>
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$2], got [$3]"; fi
}
pin() {  # pin <package> <requirements file>: the package's '==' line, lower-cased
  grep -iE "^$1==" "$2" | tr 'A-Z' 'a-z' || true
}

ctx="$work/context"
if out=$(cd "$root" && ansible-builder create -f execution-environment.yml -c "$ctx" --output-filename Containerfile 2>&1); then
  pass "ansible-builder create writes a build context"
else
  fail "ansible-builder create writes a build context" "$out"
  exit 1
fi

containerfile="$ctx/Containerfile"
check "the context holds a Containerfile" test -f "$containerfile"
check "the base image has a default, overridable with --build-arg EE_BASE_IMAGE" \
  grep -qE '^ARG EE_BASE_IMAGE="[^"]+"$' "$containerfile"
refs=$(sed -n 's/^ARG ANSIBLE_INSTALL_REFS="\(.*\)"$/\1/p' "$containerfile")
same "ansible-core and ansible-runner are pinned as in requirements*.txt" \
  "$(pin ansible-core "$root/requirements.txt") $(pin ansible-runner "$root/requirements-dev.txt")" "$refs"

python_reqs="$ctx/_build/requirements.txt"
for package in boto3 botocore docker requests; do
  expected=$(pin "$package" "$root/requirements.txt")
  if [ -z "$expected" ]; then fail "requirements.txt pins $package"; continue; fi
  same "the image's $package is pinned as in requirements.txt" "$expected" "$(pin "$package" "$python_reqs")"
done
same "the ansible meta package stays out of the image" "" "$(pin ansible "$python_reqs")"

collections=$(python - "$ctx/_build/requirements.yml" <<'PY'
import sys
import yaml
with open(sys.argv[1], encoding="utf-8") as handle:
    print(" ".join(sorted(c["name"] for c in yaml.safe_load(handle)["collections"])))
PY
)
same "the image's collections are those of requirements.yml" "amazon.aws community.aws community.docker" "$collections"

check "the image gets an ssh client (bindep.txt)" grep -q '^openssh-clients \[platform:rpm\]' "$ctx/_build/bindep.txt"

if [ "$failures" -gt 0 ]; then
  echo "execution environment: $failures check(s) failed" >&2
  exit 1
fi
echo "execution environment: the build context of execution-environment.yml carries the project's pins"
