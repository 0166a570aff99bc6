#!/usr/bin/env bash
# The built artifact is what Galaxy users and AWX execution environments get: build it,
# install it somewhere the repository is not, and run its role by FQCN from there.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ansible-galaxy collection build --output-path "$work" "$root" >/dev/null
tarball=$(ls "$work"/sgivu-deploy-*.tar.gz)
if tar tzf "$tarball" | grep -qE '^(tests|molecule|bench|\.ci)/'; then
  echo "FAIL: the artifact carries test or bench files" >&2; exit 1
fi

cd "$work"   # away from the repository's ansible.cfg and its collections/ link
printf '[defaults]\ncollections_path = %s/collections\n' "$work" > ansible.cfg
ANSIBLE_CONFIG="$work/ansible.cfg" ansible-galaxy collection install --offline --no-deps -p "$work/collections" "$tarball" >/dev/null
[ -f "$work/collections/ansible_collections/sgivu/deploy/roles/docker_host/tasks/main.yml" ] \
  || { echo "FAIL: the artifact did not install its roles" >&2; exit 1; }
cat > play.yml <<'PLAY'
---
- name: Run the installed role by its FQCN
  hosts: localhost
  gather_facts: true
  tasks:
    - name: Run the role's preflight with a bad input it must refuse
      ansible.builtin.include_role:
        name: sgivu.deploy.docker_host
        tasks_from: preflight.yml
      vars:
        docker_host_compose_source: file
PLAY
set +e
out=$(ANSIBLE_CONFIG="$work/ansible.cfg" ansible-playbook -i localhost, -c local -e 'ansible_python_interpreter={{ ansible_playbook_python }}' play.yml 2>&1)
rc=$?
set -e
if [ $rc -eq 0 ] || ! grep -q 'docker_host_compose_source=file needs docker_host_compose_file' <<<"$out"; then
  echo "FAIL: the installed role did not run its preflight (rc=$rc):" >&2
  echo "$out" >&2
  exit 1
fi
out=$(ANSIBLE_CONFIG="$work/ansible.cfg" ansible-doc -t role sgivu.deploy.docker_host 2>&1) \
  || { echo "FAIL: ansible-doc cannot read the installed role: $out" >&2; exit 1; }
# Someone who puts sgivu.deploy into their own EE gets its needs from meta/execution-environment.yml:
# ansible-builder's introspection of the installed artifact must list exactly those lines.
want=$(grep -hvE '^\s*(#|$)' "$root/meta/ee-requirements.txt" "$root/meta/ee-bindep.txt" | sed 's/$/  # from collection sgivu.deploy/')
got=$(ansible-builder introspect --sanitize "$work/collections" 2>/dev/null | sed -n "s/^- '\(.*\)'$/\1/p")
if [ "$got" != "$want" ]; then
  printf 'FAIL: ansible-builder introspect does not list meta/execution-environment.yml'"'"'s needs:\nexpected:\n%s\ngot:\n%s\n' "$want" "$got" >&2
  exit 1
fi
if grep -qE '==' <<<"$got"; then
  echo "FAIL: the collection pins an exact version into other people's EEs: $got" >&2; exit 1
fi
echo "collection artifact: $(basename "$tarball") installs; sgivu.deploy.docker_host runs by FQCN;" \
  "its EE needs are found by ansible-builder introspect"
