#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Plan, apply or restore a release of the stack's compose project on its host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_release
short_description: Plan, apply or restore a release of the stack's compose project on its host
version_added: 2.0.0
author: SGIVU platform team
description:
  - A release is the compose project (every image by digest), the env file, and what runs from them.
    C(planned) stages the candidate, pulls its images, pins each to its registry digest, validates it
    with C(docker compose config) and says whether applying it would change anything (the project, the
    env file, or containers that do not match them). Nothing that runs is touched.
  - C(applied) makes the planned candidate the running project (and the env file written beside it by
    the ssm_secrets role the running env file), writes each service's own env file, and starts the
    project in start-up order (each service once what it depends on is healthy), health-gated; it
    fails naming the services that did not become healthy, with their last log lines. A container of a
    service it started that lacks the service's DNS name on the service's network (a C(drained) hand-over
    whose run was killed or failed before the container stopped) leaves the network and joins it again, at
    the same address, with the name; C(restored) does the same.
  - C(started_beside) is the start-first half of a swap - it promotes the planned candidate and starts new
    containers of each of C(services) next to the running ones (twice its replicas in all, without recreating
    the running ones; one Compose call for all of them), and returns once the new ones are healthy; when one does
    not become healthy in time, every new container is removed, so the running ones never stop (one that serves and
    may be registered UP leaves its registry first, C(drain) seconds, and stops gracefully). C(retired) stops containers gracefully
    (SIGTERM and a grace period) and removes them - the caller moves traffic between the two.
  - C(drained) is the hand-over of a start-first swap of unpublished services, so that C(retired) may then stop the
    old containers (C(containers)) without a failed call. For a service its callers find in a registry (Eureka,
    C(EUREKA_URL) in a service's environment; a project service named there is reached at its container's
    address) it waits until every new container (running, not in C(containers)) is registered UP, then sets the
    old ones OUT_OF_SERVICE. A service without a registry is found by its callers under its DNS name (Docker's, the
    service name) - its old containers leave that name and serve on at their address (each leaves the stack network
    and joins it again at the same address without the service name among its aliases; connections already open go
    on). Then it waits once - C(drain) seconds (the callers' cache of the instance list) when a registry took an old
    one out, C(dns_cache) seconds (the callers' DNS cache) when a name lost one, the longer when both did. When a new
    container does not register UP in time, the new containers of every service are removed and the module fails;
    the old ones never left service nor their name.
  - C(rotated) changes database credentials in place, in one C(phase) - C(begin) (before any service gets
    the new value; the new value works beside the old one), C(finish) (every service runs with the new value;
    only it works - Redis is recreated from the running project, PostgreSQL keeps its container) or C(undo)
    (the change failed; the old value works again; a key that cannot be is a warning, never a failure, so the
    last good release is still put back). A run that began and never finished or undid a rotation (killed)
    leaves C(stack.env.rotating); the next plan and rotation then take every rotate key again. What rotates is the candidate project's
    C(x-sgivu.rotate) (the catalog's C(rotate) of its databases), for each key whose value differs between the
    old env file (the archive of C(release), else the running one) and the candidate. The client runs in the
    database's container with the value in its environment and the statements on stdin, never on a command line.
  - C(restored) brings an archived release back (its compose file and env file from
    C(<root>/releases/<id>/)), images by digest, health-gated; without a release it stops the stack
    (volumes are kept). Only the services that differ from it start. One that runs (a release that was
    healthy but bad, or one a later step failed after), has no container that does not run, and either
    publishes ports or is in C(start_first) with a container that serves (healthy, or no health check)
    comes back start-first - its restored containers start beside the running ones, which it returns as
    C(old) for the caller to retire once Nginx moved and, for the unpublished ones it returns in
    C(handover), once C(state=drained) handed them over in their registry or under their DNS name.
  - Compose is always given the project name, the project directory, the file and C(--env-file /dev/null),
    without any C(COMPOSE_*) or C(DOCKER_*) variable in its environment, so no env file value can change
    what Compose does. Services receive their keys through C(env_file) entries in raw format - every
    byte of a value reaches the container, nothing is interpolated.
  - No value of the env file appears in anything the module returns, in success or failure (scrubbed).
  - Needs Docker Compose 2.30 or later on the host.
options:
  root:
    description: The stack's directory on the host (compose files, env files, releases).
    type: path
    required: true
  name:
    description: The Compose project name.
    type: str
    required: true
  state:
    description: C(planned), C(applied), C(started_beside), C(drained), C(retired), C(rotated) or C(restored) (see the description).
    type: str
    choices: [planned, applied, started_beside, drained, retired, rotated, restored]
    required: true
  project:
    description:
      - The compose project (C(state=planned)), as the C(sgivu.deploy.compose_project) filter renders it,
        with its C(x-sgivu) mapping (env_keys, waves, deadlines). Not needed with C(release).
    type: dict
  env_source:
    description:
      - C(state=planned) the env file of the candidate, C(next) (C(stack.env.next), written by ssm_secrets)
        or C(live) (the running C(stack.env) - an update changes images only).
    type: str
    choices: [next, live]
    default: next
  pull:
    description: C(missing) pulls only images not on the host; C(always) re-pulls every tag (a moved tag is seen).
    type: str
    choices: [missing, always]
    default: missing
  expect:
    description:
      - C(state=applied) or C(started_beside) the plan's result (its C(candidate) and C(live) hashes); the
        apply refuses when the running project, the env file or the candidate changed since (another run).
    type: dict
  services:
    description:
      - C(state=applied) starts only these services (without their dependencies); empty starts those the plan
        (C(expect)) found changed, in start-up order, and removes the containers of services no longer in the project.
      - C(state=started_beside) the services to start beside their running containers; C(state=drained) the
        services handed over (those of one C(started_beside)).
    type: list
    elements: str
    default: []
  containers:
    description: C(state=retired) the IDs of the containers to stop and remove; C(state=drained) the old ones (C(old) of
      C(started_beside)).
    type: list
    elements: str
    default: []
  grace:
    description: C(state=retired) seconds a container has to finish its requests after SIGTERM.
    type: int
    default: 30
  timeout:
    description:
      - Seconds each wave has to become healthy; 0 takes each service's own deadline.
      - C(state=drained) seconds the new containers have to register UP (0 - the longest deadline of the services).
    type: int
    default: 0
  drain:
    description:
      - C(state=drained) seconds to wait after the old containers left service, before the module returns - the
        longest time a caller keeps the instance list it fetched (Spring Cloud LoadBalancer's cache, 35 s by default).
      - C(state=started_beside) or C(drained), when the swap fails - the seconds a new container that serves (another
        service of the step was late) waits after it left its registry, before it stops.
    type: int
    default: 35
  dns_cache:
    description:
      - C(state=drained) seconds to wait after the old containers of a service found by its DNS name left that name,
        before the module returns - the longest time a caller keeps an address it looked up (the JVM's
        C(networkaddress.cache.ttl), 30 s by default). The longer of C(drain) and this one is waited when both apply.
    type: int
    default: 30
  release:
    description:
      - C(state=restored) the archived release to bring back; empty stops the stack.
      - C(state=planned) plan this archived release (its compose file and env file) instead of C(project).
      - C(state=rotated) the host's last good release, whose archived env file holds the old values; empty
        takes the running env file (before the candidate is promoted).
    type: str
    default: ""
  phase:
    description: C(state=rotated) which phase - C(begin), C(finish) or C(undo) (see the description).
    type: str
    choices: [begin, finish, undo]
    default: begin
  rotations:
    description:
      - C(state=rotated) only these credentials (C(service/KEY)), the plan's C(rotations); omitted, every one
        the env files and C(stack.env.rotating) call for.
    type: list
    elements: str
  start_first:
    description:
      - C(state=restored) the services that may come back start-first without publishing a port - the catalog's
        C(update_order=start-first) ones (the C(sgivu.deploy.catalog_validate) filter fills in the default). A
        published service that runs always comes back start-first; one of these with no healthy container now
        (it has no caller worth keeping) and any other service are recreated.
    type: list
    elements: str
    default: []
  log_lines:
    description: Last log lines returned for each service that did not become healthy.
    type: int
    default: 20
extends_documentation_fragment:
  - sgivu.deploy.attributes
notes:
  - In check mode C(planned) pulls nothing and writes no candidate; the other states change nothing.
"""

EXAMPLES = r"""
- name: Plan the release
  sgivu.deploy.compose_release:
    root: /opt/sgivu
    name: sgivu
    state: planned
    project: "{{ stack_services | sgivu.deploy.compose_project('sgivu', '172.30.0.0/24') }}"
  register: plan

- name: Apply it
  sgivu.deploy.compose_release:
    root: /opt/sgivu
    name: sgivu
    state: applied
    expect: "{{ plan.live }}"
  when: plan.pending
"""

RETURN = r"""
pending:
  description: C(planned) whether applying the candidate would change anything.
  returned: state=planned
  type: bool
reasons:
  description: C(planned) why it is pending (no secret in them).
  returned: state=planned
  type: list
  elements: str
services:
  description: C(planned) the services whose containers do not match the candidate.
  returned: state=planned
  type: list
  elements: str
images:
  description: C(planned) service -> image reference, by digest where the registry gave one.
  returned: state=planned
  type: dict
digests:
  description: C(planned) service -> C(repository@sha256:...) (null for an image without a registry digest).
  returned: state=planned
  type: dict
changed_keys:
  description: C(planned) the names of the env keys whose value changes (never a value).
  returned: state=planned
  type: list
  elements: str
rotations:
  description:
    - C(planned) the credentials (C(service/KEY)) a running database changes in place.
    - C(rotated) those this phase changed.
  returned: state=planned or state=rotated
  type: list
  elements: str
errors:
  description: C(rotated) with C(phase=undo), the keys that could not be given their old value (also warnings).
  returned: state=rotated
  type: list
  elements: str
rollout:
  description:
    - C(planned) when only env values change, the changed services in start-up order, to be replaced one at
      a time (start-first where they publish); else empty.
  returned: state=planned
  type: list
  elements: str
release_services:
  description: C(planned) service -> C({image, digest}), as the release history records it.
  returned: state=planned
  type: dict
live:
  description: C(planned) sha256 of the running compose file and env file.
  returned: state=planned
  type: dict
candidate:
  description: C(planned) sha256 of the candidate compose file and env file.
  returned: state=planned
  type: dict
containers:
  description: The stack's containers after the call, as C(community.docker.docker_host_info) lists them.
  returned: success
  type: list
  elements: dict
registry:
  description: C(drained) the registry's URL (C(EUREKA_URL) without credentials; several, comma-separated, when the
    services name different ones); null when none of them has one.
  returned: state=drained
  type: str
registered:
  description: C(drained) the instance ids of the new containers, registered UP.
  returned: state=drained
  type: list
  elements: str
out_of_service:
  description: C(drained) the instance ids of the old containers, set OUT_OF_SERVICE.
  returned: state=drained
  type: list
  elements: str
left_dns:
  description: C(drained) the IDs (12 characters) of the old containers that left their service's DNS name.
  returned: state=drained
  type: list
  elements: str
readdressed:
  description: C(drained) the IDs (12 characters) of the old containers that left their service's DNS name and came back
    at another address (their network takes no fixed address) - the connections open to them were lost.
  returned: state=drained
  type: list
  elements: str
drained:
  description: C(drained) the seconds waited for the callers' caches (0 when nothing was taken out of service nor left its
    name).
  returned: state=drained
  type: int
old:
  description: C(started_beside), C(restored) the IDs of the containers that ran before (to retire).
  returned: state=started_beside or state=restored
  type: list
  elements: str
handover:
  description:
    - C(restored) the unpublished services that came back start-first - pass them with C(old) to C(state=drained)
      before C(old) is retired.
  returned: state=restored
  type: list
  elements: str
new:
  description: C(started_beside) the IDs of the new, healthy containers.
  returned: state=started_beside
  type: list
  elements: str
started:
  description: C(applied), C(restored) the services started or checked, in start-up order.
  returned: success
  type: list
  elements: str
failed_services:
  description: The services that did not become healthy.
  returned: failure
  type: list
  elements: str
logs:
  description: Their last log lines, scrubbed of every env value.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sgivu.deploy.plugins.module_utils.compose_host import ComposeError, Release, clear_docker_environment


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            name=dict(type="str", required=True),
            state=dict(type="str", required=True,
                       choices=["planned", "applied", "started_beside", "drained", "retired", "rotated", "restored"]),
            project=dict(type="dict"),
            env_source=dict(type="str", default="next", choices=["next", "live"]),
            pull=dict(type="str", default="missing", choices=["missing", "always"]),
            expect=dict(type="dict"),
            services=dict(type="list", elements="str", default=[]),
            containers=dict(type="list", elements="str", default=[]),
            grace=dict(type="int", default=30),
            timeout=dict(type="int", default=0),
            drain=dict(type="int", default=35),
            dns_cache=dict(type="int", default=30),
            release=dict(type="str", default=""),
            log_lines=dict(type="int", default=20),
            phase=dict(type="str", default="begin", choices=["begin", "finish", "undo"]),
            rotations=dict(type="list", elements="str"),
            start_first=dict(type="list", elements="str", default=[]),
        ),
        required_if=[("state", "applied", ("expect",)), ("state", "started_beside", ("expect", "services")),
                     ("state", "drained", ("services",))],
        supports_check_mode=True,
    )
    p = module.params
    clear_docker_environment()
    release = Release(module.run_command, p["root"], p["name"], check_mode=module.check_mode)
    try:
        if p["state"] == "planned":
            if not p["project"] and not p["release"]:
                module.fail_json(msg="state=planned needs a project or a release")
            plan = release.plan(dict(p["project"] or {}), p["pull"], p["env_source"], p["release"])
            module.exit_json(changed=plan["pulled"], **plan)
        elif p["state"] == "applied":
            module.exit_json(changed=True, **release.apply(p["expect"], p["services"], p["log_lines"], p["timeout"]))
        elif p["state"] == "started_beside":
            module.exit_json(changed=True, **release.start_beside(p["expect"], p["services"], p["log_lines"], p["timeout"],
                                                                  max(0, p["drain"])))
        elif p["state"] == "drained":
            done = release.drain(p["services"], p["containers"], p["log_lines"], p["timeout"], max(0, p["drain"]),
                                 max(0, p["dns_cache"]))
            module.exit_json(changed=bool(done["out_of_service"] or done["left_dns"]), **done)
        elif p["state"] == "retired":
            done = release.retire(p["containers"], p["grace"])
            module.exit_json(changed=bool(done["removed"]), **done)
        elif p["state"] == "rotated":
            done = release.rotate(p["phase"], p["release"], p["log_lines"], p["rotations"])
            for error in done["errors"]:
                module.warn(error)
            module.exit_json(changed=bool(done["rotations"]), containers=release.summaries(), **done)
        else:
            module.exit_json(changed=True, **release.restore(p["release"], p["log_lines"], p["start_first"]))
    except ComposeError as error:
        module.fail_json(msg=error.msg, **error.details)
    except (OSError, ValueError) as error:
        module.fail_json(msg=release.compose.scrub(f"{p['state']} failed on {p['root']}: {error}"))


if __name__ == "__main__":
    main()
