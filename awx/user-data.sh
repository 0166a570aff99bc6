#!/bin/bash
# EC2 user data of the Auto Scaling group's launch template: the new instance asks AWX to run the
# provisioning callback template ("sgivu deploy new instance") limited to itself. AWX refreshes
# its inventory from EC2 when it does not know the caller yet, so the first calls may get 400
# "No matching host could be found"; they are retried. A wrong key (403) is not.
#
# Set the three values in the launch template (or render them with its tooling). The key lets
# only a host AWX's inventory already lists start its own deploy; user data is readable on the
# instance (instance metadata), so treat the key as a per-environment secret and rotate it in AWX
# and in the launch template together.
set -u
AWX_URL=${AWX_URL:-https://awx.example.com}
TEMPLATE_ID=${TEMPLATE_ID:-42}
HOST_CONFIG_KEY=${HOST_CONFIG_KEY:-replace-with-the-templates-host-config-key}
ATTEMPTS=${ATTEMPTS:-40}
RETRY_DELAY=${RETRY_DELAY:-15}

url="${AWX_URL%/}/api/v2/job_templates/${TEMPLATE_ID}/callback/"
for attempt in $(seq 1 "$ATTEMPTS"); do
  # The key goes in the body, never on a command line another user could read (curl reads @-).
  status=$(printf 'host_config_key=%s' "$HOST_CONFIG_KEY" |
    curl --silent --output /dev/null --write-out '%{http_code}' --max-time 30 \
      --request POST --data @- "$url")
  case "$status" in
    201 | 202) echo "AWX accepted the callback (HTTP $status, attempt $attempt)"; exit 0 ;;
    403 | 404 | 405) echo "AWX refused the callback (HTTP $status): check TEMPLATE_ID and HOST_CONFIG_KEY" >&2; exit 1 ;;
  esac
  echo "AWX did not take the callback yet (HTTP $status, attempt $attempt of $ATTEMPTS)" >&2
  sleep "$RETRY_DELAY"
done
exit 1
