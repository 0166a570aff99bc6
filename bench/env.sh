# shellcheck shell=bash
# `. bench/env.sh`, in a shell in the repository: the environment bench/deploy runs the operator's
# command in, so that playbooks run by hand reach the bench it left up - the virtual environment
# (ansible-playbook, molecule), the bench's SGIVU_BENCH_* variables, the registry's credentials
# (read from .bench/registry.env into the environment, never printed) and moto's dummy AWS keys
# with its endpoint (no real account is ever reached). Starts nothing; run bench/deploy first.
#   . bench/env.sh
#   ansible-playbook update.yml -i inventories/bench -e service=sgivu-gateway -e version=1.1.0
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [ ! -x "$SGIVU_VENV/bin/ansible-playbook" ] || [ ! -s "$SGIVU_BENCH_DIR/registry.env" ]; then
  echo "bench/env.sh: no bench here yet ($SGIVU_VENV or $SGIVU_BENCH_DIR/registry.env is missing): run bench/deploy first" >&2
  return 1 2>/dev/null || exit 1
fi
export PATH="$SGIVU_VENV/bin:$PATH" VIRTUAL_ENV="$SGIVU_VENV" DOCKER_CONFIG="$SGIVU_BENCH_DIR/docker"
bench_registry_credentials
bench_aws_env
