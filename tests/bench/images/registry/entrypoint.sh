#!/bin/sh
# The bench passes the credentials at start; the bcrypt htpasswd file is made from them here.
set -eu
: "${REGISTRY_USER:?REGISTRY_USER is required}"
: "${REGISTRY_PASSWORD:?REGISTRY_PASSWORD is required}"
htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" > /etc/docker/registry/htpasswd
unset REGISTRY_PASSWORD
exec /usr/bin/docker-registry serve /etc/docker/registry/config.yml
