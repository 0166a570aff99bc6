"""Tags of the bench registry moved and put back, as a careless CI job would re-push them.

Shared by the verifiers that play a moved tag (issue 17): the registry is the bench's own, on
this machine's loopback; every tag moved is remembered and put back by ``put_back``.
"""
from __future__ import annotations

import os
import subprocess
import tempfile


class MovedTags:
    """Moves tags of one repository of the bench registry from this machine, and puts them back."""

    def __init__(self, registry: dict, repository: str) -> None:
        """``registry``: the conftest fixture (user, password); ``repository``: e.g. sgivu/sgivu-client."""
        self.repo = f"{os.environ['SGIVU_BENCH_REGISTRY_LOCAL']}/{repository}"
        self.config = tempfile.mkdtemp(prefix="sgivu-moved-tag-")
        self.saved: dict[str, str] = {}
        login = subprocess.run(["docker", "login", "-u", registry["user"], "--password-stdin", self.repo.split("/")[0]],
                               input=registry["password"], env=self.env(), capture_output=True, text=True, check=False)
        assert login.returncode == 0, login.stderr

    def env(self) -> dict:
        return dict(os.environ, DOCKER_CONFIG=getattr(self, "config", ""))

    def docker(self, *args: str) -> str:
        done = subprocess.run(["docker", *args], env=self.env(), capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def image_id(self, tag: str) -> str:
        self.docker("pull", "--quiet", f"{self.repo}:{tag}")
        return self.docker("image", "inspect", "-f", "{{.Id}}", f"{self.repo}:{tag}")

    def move(self, tag: str, to_content_of: str) -> None:
        """Re-push the image of tag ``to_content_of`` as ``tag``, remembering what ``tag`` was."""
        source = self.saved.get(to_content_of) or self.image_id(to_content_of)
        self.saved.setdefault(tag, self.image_id(tag))
        self.docker("tag", source, f"{self.repo}:{tag}")
        self.docker("push", "--quiet", f"{self.repo}:{tag}")

    def put_back(self) -> None:
        for tag, image in self.saved.items():
            self.docker("tag", image, f"{self.repo}:{tag}")
            self.docker("push", "--quiet", f"{self.repo}:{tag}")
        self.saved.clear()
