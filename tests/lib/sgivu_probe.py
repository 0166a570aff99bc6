"""A request probe shared by the Molecule verifiers and the benchmarks."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request


class Poller:
    """Run `_run` in a thread between `with` and its end; `_stop` tells the loop to finish."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class Probe(Poller):
    """GET (or `method`, with `data` as a JSON body) a URL every `interval` seconds in a thread,
    bounded in count and time; keep every outcome as (status, version answered). A request not
    answered within `timeout` seconds is a failure (``TimeoutError``).

    The target is a bench host's Nginx on the bench network, which the test run created.
    """

    def __init__(self, url: str, interval: float = 0.02, max_requests: int = 30000, max_seconds: float = 900,
                 method: str = "GET", data: bytes | None = None, timeout: float = 5):
        self.url, self.interval, self.timeout = url, interval, timeout
        self.method, self.data = method, data
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.results: list = []
        super().__init__()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and len(self.results) < self.max_requests and time.monotonic() < deadline:
            try:
                request = urllib.request.Request(self.url, data=self.data, method=self.method,
                                                 headers={"Content-Type": "application/json"} if self.data else {})
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    self.results.append((response.status, json.loads(response.read()).get("version")))
            except urllib.error.HTTPError as error:
                self.results.append((error.code, None))
            except Exception as error:  # a refused or reset connection is a failed request
                self.results.append((type(error).__name__, None))
            self._stop.wait(self.interval)

    @property
    def failures(self) -> list:
        return [r for r in self.results if r[0] != 200]

    @property
    def versions(self) -> set:
        return {r[1] for r in self.results if r[0] == 200}

    @property
    def first_failure(self) -> int:
        """Index of the first failed request, or -1."""
        return next((i for i, r in enumerate(self.results) if r[0] != 200), -1)
