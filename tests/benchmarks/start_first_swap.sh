#!/usr/bin/env bash
# The baseline of `bench/benchmark update`: a start-first swap of one published service done by
# hand on the host, the way docker-rollout does it, once the project names the new image
# (set_image.py): pull it, scale the service to two without recreating the running container,
# wait until the new one is healthy, send Nginx to it alone (nginx -t, graceful reload), then
# stop and remove the old one. No lock, no plan, no release record, no health check of anything
# else: the raw work only.
# Usage (on the host, as root): start_first_swap.sh PROJECT_DIR PROJECT SERVICE PORT
set -euo pipefail
dir=$1 project=$2 service=$3 port=$4
compose=(docker compose -p "$project" --project-directory "$dir" -f "$dir/compose.yml" --env-file /dev/null)
filter=(--filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$service")

old=$(docker ps -q "${filter[@]}")
"${compose[@]}" pull --quiet "$service"
"${compose[@]}" up --detach --no-deps --no-recreate --scale "$service=2" "$service" 2>/dev/null
new=$(docker ps -q "${filter[@]}" | grep -v "$old")
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$new")" = healthy ]; do sleep 0.5; done
hostport=$(docker port "$new" "$port/tcp" | head -1 | sed 's/.*://')

# Nginx: the service's upstream block lists the new container's port alone.
upstreams="/etc/nginx/conf.d/$project-upstreams.conf"
block="upstream ${project}__$(tr -c 'A-Za-z0-9_\n' '_' <<<"$service") {"
awk -v block="$block" -v server="    server 127.0.0.1:$hostport;" '
  $0 == block { print; print server; inside = 1; next }
  inside && /^ *server / { next }
  inside && /^}/ { inside = 0 }
  { print }' "$upstreams" >"$upstreams.new"
mv "$upstreams.new" "$upstreams"
nginx -t -q
nginx -s reload

docker stop --time 30 "$old" >/dev/null
docker rm "$old" >/dev/null
