"""A service changed by hand behind the collection's back, on the stack test_3_moved_tag.py left.

The seed's rebuild-service way: the operator edits the compose file to another image and recreates
the gateway in place (`docker compose up -d --no-deps --force-recreate`). The container keeps the
configuration label of the release it replaced but runs another image. The next `update.yml` must
see that and swap the gateway start-first to the version asked for, dropping no request, with
Nginx sent to the new container.
"""
from __future__ import annotations

import json
import pathlib
import shlex

from bench_images import NEXT  # tests/lib (bench/images.yml), on the path from conftest.py

CATALOG_TAG = "1.0.0"  # the gateway's tag in the catalog (inventories/prod/group_vars/all/stack.yml)
SET_IMAGE = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "set_image.py"


def gateway(host, stack: str) -> dict:
    ids = host.check_output(f"docker ps -q --filter label=com.docker.compose.project={stack} "
                            f"--filter label=com.docker.compose.service=sgivu-gateway").split()
    assert len(ids) == 1, f"sgivu-gateway: {len(ids)} running containers"
    return json.loads(host.check_output(f"docker inspect {ids[0]}"))[0]


def test_an_update_after_a_change_by_hand_swaps_to_the_version_asked_for(host, run_playbook, probe, via_nginx, ansible_vars):
    stack = ansible_vars["stack_name"]
    root = f"/opt/{stack}"
    wanted = via_nginx("/v1/version")[1]["version"]
    by_hand = CATALOG_TAG if wanted != CATALOG_TAG else NEXT
    image = f"{ansible_vars['stack_registry']}/sgivu-gateway:{by_hand}"
    code = SET_IMAGE.read_text(encoding="utf-8")
    host.run_expect([0], f"python3 -c {shlex.quote(code)} {root}/compose.yml sgivu-gateway {image}")
    compose = f"docker compose -p {stack} --project-directory {root} -f {root}/compose.yml --env-file /dev/null"
    host.run_expect([0], f"{compose} pull -q sgivu-gateway && {compose} up -d --no-deps --force-recreate --wait sgivu-gateway")
    assert gateway(host, stack)["Config"]["Image"] == image

    with probe("/v1/version") as watch:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                           "-e", "service=sgivu-gateway", "-e", f"version={wanted}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert watch.failures == []
    running = gateway(host, stack)
    assert f"/sgivu-gateway:{wanted}@sha256:" in running["Config"]["Image"]
    port = running["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    assert f"server 127.0.0.1:{port};" in host.file(f"/etc/nginx/conf.d/{stack}-upstreams.conf").content_string
    assert via_nginx("/v1/version")[1]["version"] == wanted
