#!/usr/bin/env python3
"""SGIVU stand-in service for the test bench.

One image plays every SGIVU service (gateway, auth, config, ...) under its own
name, port and health path. Configuration comes only from the environment:

  STANDIN_SERVICE        service name reported in every response (default "standin")
  STANDIN_PORT           TCP port to listen on (default 8080)
  STANDIN_BIND           address to bind (default 0.0.0.0)
  STANDIN_HEALTH_PATH    health endpoint (default /actuator/health)
  STANDIN_VERSION        version string (baked into the image from the VERSION build arg)
  STANDIN_REQUIRED_ENV   comma-separated env keys that must be set and non-empty;
                         otherwise print their names (never values) and exit 2
  STANDIN_STARTUP_DELAY  seconds to wait before listening (default 0)
  STANDIN_HEALTHY        "true" (default) or false/0/no/off: health answers 503
  STANDIN_FAIL_SHARE     share (0 to 1, default 0) of the requests other than the health check
                         that answer 500, evenly spread (0.3: 3 of every 10): a release that is
                         healthy and still bad (baked by the FAIL_SHARE build arg)
  STANDIN_LATENCY_MS     milliseconds every request other than the health check waits before
                         its answer (default 0; baked by the LATENCY_MS build arg)
  STANDIN_DATABASE_URL   optional postgresql://user:pass@host:5432/db
  STANDIN_REDIS_URL      optional redis://:pass@host:6379/0
  STANDIN_KEEPALIVE_TIMEOUT  seconds an idle keep-alive connection stays open (default 60, embedded
                         Tomcat's keepAliveTimeout): answers are HTTP/1.1 and the connection is
                         kept for the next request, as Tomcat keeps Nginx's upstream connections
  STANDIN_DB_WAIT        seconds to keep retrying the first DB connection (default 60)
  STANDIN_DB_POOL        database connections opened at start and kept open (default 4), as
                         Spring Boot's HikariCP keeps a fixed pool: a connection that fails is
                         replaced by a new one (the request is tried once more on it)
  STANDIN_EUREKA_SERVER  "true": also play the Eureka server (sgivu-discovery) - the REST subset the
                         clients use under /eureka/apps: register (POST), renew (PUT), cancel
                         (DELETE), status override (PUT/DELETE .../status), list (GET, JSON); a
                         lease not renewed for its duration is evicted every STANDIN_EUREKA_EVICTION
                         seconds (default 60, Eureka's evictionIntervalTimerInMs)
  EUREKA_SERVER_DEFAULTOPENFORTRAFFICCOUNT, EUREKA_SERVER_WAITTIMEINMSWHENSYNCEMPTY
                         the real server's keys (Spring Cloud Netflix; Spring's environment names
                         of eureka.server.default-open-for-traffic-count and
                         .wait-time-in-ms-when-sync-empty): a server with no peers that opens for
                         traffic with a count of 0 (default 1: at once) answers reads of the
                         registry (GET /eureka/apps...) with 403 for that many milliseconds
                         (default 300000) after it started, while it takes registrations and
                         renewals, so that the clients keep the copy they have until every
                         instance registered again
  EUREKA_URL             the real services' variable (http://sgivu-discovery:8761/eureka): once
                         listening, register there as the service (app = its name in capitals,
                         instance id host:service:port, status UP), renew every STANDIN_EUREKA_RENEW seconds
                         (default 30; re-register when the server forgot it, and when the status
                         changes), and on SIGTERM cancel once the in-flight requests are answered
                         (Spring stops the web server first, then deregisters)
  EUREKA_CLIENT_HEALTHCHECK_ENABLED
                         the real client's key (eureka.client.healthcheck.enabled): set to any
                         value but "false", the status registered follows the health endpoint,
                         UP while healthy, else DOWN; otherwise (Spring's default) UP from the
                         moment the service listens, healthy or not
  STANDIN_INSTANCE_ADDRESS  the address registered with Eureka (default: the container's own, from
                         its host name; Spring's eureka.instance.ip-address)
  STANDIN_ROUTES         the calls a gateway makes to the services behind it, as Spring Cloud
                         Gateway's routes: comma-separated PREFIX=URI, e.g.
                         "/v1/users=lb://sgivu-user,/v1/ml=http://sgivu-ml:8000". A request whose
                         path is PREFIX or under it is sent on, same method, path, query and body,
                         and the answer relayed. lb://NAME: an UP instance of NAME from the Eureka
                         server at EUREKA_URL, in turn (round robin) - the list fetched is kept for
                         STANDIN_LB_CACHE_TTL seconds (default 35, Spring Cloud LoadBalancer's
                         cache), so an instance that left the registry is still called until then;
                         http://HOST:PORT: Docker's DNS name, as ECS service discovery does - the
                         addresses it resolves to are kept STANDIN_DNS_CACHE_TTL seconds (default 30,
                         the JVM's networkaddress.cache.ttl), taken in turn, so a container that left
                         the name is still called until then. No instance: 503; the call fails
                         (refused, reset, timed out): 502. Neither is retried, as the gateway retries
                         nothing without a Retry filter.
  STANDIN_XRAY_DAEMON    "true": also play the AWS X-Ray daemon - take segment documents on
                         UDP STANDIN_PORT (its wire format: a JSON header line, then the
                         segment) and list the ones received at GET /segments (newest 1000)
  AWS_XRAY_DAEMON_ADDRESS  host:port of the X-Ray daemon (what the X-Ray SDK reads): every
                         request but the health check sends one segment there over UDP

A file named NEVER_HEALTHY next to this script (baked by the NEVER_HEALTHY=1
build arg) makes the health endpoint answer 503 whatever the environment says.

Only the Python standard library is needed unless a database or Redis URL is
set (then psycopg2 / redis, imported lazily).
"""

import binascii
import collections
import datetime
import http.client
import itertools
import json
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlsplit

EXIT_BAD_CONFIG = 2
TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS items ("
    " id serial PRIMARY KEY,"
    " body text,"
    " created_at timestamptz DEFAULT now())"
)
# Arbitrary constant so concurrent replicas do not race on CREATE TABLE.
DDL_LOCK_KEY = 74872201
# Seconds a Redis command waits for Redis to come back (a recreated container) before it fails.
REDIS_RECONNECT = 10
NEVER_HEALTHY_MARKER = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "NEVER_HEALTHY")
FALSE_WORDS = {"false", "0", "no", "off", "n"}

STOP = threading.Event()
# The last status a health probe got (log_request logs a probe only when it changes).
health_answers = {"lock": threading.Lock(), "last": None}


def log(msg, stream=None):
    stream = stream or sys.stdout
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        stream.write("%s %s\n" % (ts, msg))
        stream.flush()
    except (ValueError, OSError):
        pass


class Config:
    def __init__(self, env):
        self.service = env.get("STANDIN_SERVICE") or "standin"
        self.port = int(env.get("STANDIN_PORT") or 8080)
        self.bind = env.get("STANDIN_BIND") or "0.0.0.0"
        health = env.get("STANDIN_HEALTH_PATH") or "/actuator/health"
        self.health_path = health if health.startswith("/") else "/" + health
        self.version = env.get("STANDIN_VERSION") or "0.0.0-dev"
        self.startup_delay = float(env.get("STANDIN_STARTUP_DELAY") or 0)
        self.healthy = (env.get("STANDIN_HEALTHY") or "true").strip().lower() not in FALSE_WORDS
        self.never_healthy = os.path.exists(NEVER_HEALTHY_MARKER)
        self.fail_share = min(1.0, max(0.0, float(env.get("STANDIN_FAIL_SHARE") or 0)))
        self.latency = max(0.0, float(env.get("STANDIN_LATENCY_MS") or 0)) / 1000.0
        # The URLs may name secrets as $KEY (baked into a service's image, like a
        # Spring datasource URL): they are expanded from the environment at start.
        self.database_url = _expand(env.get("STANDIN_DATABASE_URL"), env)
        self.redis_url = _expand(env.get("STANDIN_REDIS_URL"), env)
        self.keepalive_timeout = max(0.1, float(env.get("STANDIN_KEEPALIVE_TIMEOUT") or 60))
        self.db_wait = float(env.get("STANDIN_DB_WAIT") or 60)
        self.db_pool = max(1, int(env.get("STANDIN_DB_POOL") or 4))
        self.hostname = socket.gethostname()
        self.xray_daemon = (env.get("STANDIN_XRAY_DAEMON") or "").strip().lower() in ("true", "1", "yes", "on")
        self.eureka_server = (env.get("STANDIN_EUREKA_SERVER") or "").strip().lower() in ("true", "1", "yes", "on")
        self.eureka_eviction = max(0.1, float(env.get("STANDIN_EUREKA_EVICTION") or 60))
        # Seconds a fresh registry keeps its list from the clients (Eureka's shouldAllowAccess).
        self.eureka_closed_for = 0.0
        if int(env.get("EUREKA_SERVER_DEFAULTOPENFORTRAFFICCOUNT") or 1) == 0:
            self.eureka_closed_for = max(0.0, float(env.get("EUREKA_SERVER_WAITTIMEINMSWHENSYNCEMPTY") or 300000) / 1000)
        self.eureka_url = (env.get("EUREKA_URL") or "").strip().rstrip("/")
        self.eureka_renew = max(0.1, float(env.get("STANDIN_EUREKA_RENEW") or 30))
        # Spring's @ConditionalOnProperty without havingValue: on for any value but "false".
        self.eureka_healthcheck = (env.get("EUREKA_CLIENT_HEALTHCHECK_ENABLED") or "false").strip().lower() != "false"
        self.xray_address = _xray_address(env.get("AWS_XRAY_DAEMON_ADDRESS"))
        self.instance_address = (env.get("STANDIN_INSTANCE_ADDRESS") or "").strip()
        self.routes = _routes(env.get("STANDIN_ROUTES"))
        self.lb_cache_ttl = max(0.0, float(env.get("STANDIN_LB_CACHE_TTL") or 35))
        self.dns_cache_ttl = max(0.0, float(env.get("STANDIN_DNS_CACHE_TTL") or 30))


def _routes(value):
    """[(prefix, uri)] of STANDIN_ROUTES, the longest prefix first; ValueError naming a bad entry."""
    routes = []
    for entry in filter(None, (e.strip() for e in (value or "").split(","))):
        prefix, _, uri = entry.partition("=")
        scheme = urlsplit(uri.strip()).scheme
        if not prefix.startswith("/") or scheme not in ("lb", "http") or not urlsplit(uri.strip()).hostname:
            raise ValueError("STANDIN_ROUTES: %r is not PREFIX=lb://NAME or PREFIX=http://HOST:PORT" % entry)
        routes.append((prefix.rstrip("/") or "/", uri.strip()))
    return sorted(routes, key=lambda r: -len(r[0]))


XRAY_HEADER = b'{"format": "json", "version": 1}\n'


def _xray_address(value):
    """(host, port) of the UDP daemon from AWS_XRAY_DAEMON_ADDRESS ("host:port", or the SDK's
    "tcp:host:port udp:host:port" form); None when unset or unreadable."""
    if not value:
        return None
    parts = value.split()
    udp = next((p[4:] for p in parts if p.startswith("udp:")), parts[0])
    host, _, port = udp.rpartition(":")
    return (host, int(port)) if host and port.isdigit() and 0 < int(port) < 65536 else None


def xray_segment(cfg, method, path, status, started, ended):
    """One X-Ray segment document of a request, as the X-Ray SDK writes it (trace id: 1-<epoch hex>-<96 bits>)."""
    return {
        "name": cfg.service,
        "id": binascii.hexlify(os.urandom(8)).decode(),
        "trace_id": "1-%08x-%s" % (int(started), binascii.hexlify(os.urandom(12)).decode()),
        "start_time": started,
        "end_time": ended,
        "http": {"request": {"method": method, "url": path}, "response": {"status": status}},
        "service": {"version": cfg.version},
    }


def send_segment(cfg, segment):
    """Send a segment to the daemon, fire and forget (a lost datagram is never the request's problem)."""
    if not cfg.xray_address:
        return
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(XRAY_HEADER + json.dumps(segment).encode(), cfg.xray_address)
    except Exception:  # noqa: BLE001  (tracing must never fail the request)
        pass


class SegmentStore:
    """What the stand-in X-Ray daemon received: the newest segments, parsed."""

    def __init__(self, keep=1000):
        self._segments = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self.received = 0

    def add(self, datagram):
        header, _, body = datagram.partition(b"\n")
        try:
            if json.loads(header.decode()).get("format") != "json":
                return False
            segment = json.loads(body.decode())
        except Exception:  # noqa: BLE001  (any datagram: bad JSON, deep nesting, not an object)
            return False
        if not isinstance(segment, dict):
            return False
        with self._lock:
            self._segments.append(segment)
            self.received += 1
        return True

    def snapshot(self):
        with self._lock:
            return {"received": self.received, "segments": list(self._segments)}


def serve_segments(cfg, store):
    """The daemon's UDP side: take datagrams on cfg.port until STOP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((cfg.bind, cfg.port))
    sock.settimeout(0.5)
    log("%s: taking X-Ray segments on udp %s:%d" % (cfg.service, cfg.bind, cfg.port))
    with sock:
        while not STOP.is_set():
            try:
                datagram = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                store.add(datagram)
            except Exception as exc:  # noqa: BLE001  (one datagram never stops the daemon)
                log("%s: dropped a datagram (%s)" % (cfg.service, _one_line(exc)))


class Registry:
    """The Eureka server's registry: app -> instance id -> lease (as the Eureka REST API shows it)."""

    def __init__(self, clock=time.monotonic, closed_for=0.0):
        self._apps = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._opens = clock() + closed_for

    def readable(self):
        """Whether the registry shows its list yet: a server that started empty, with no peer to copy
        from, keeps it from the clients until its wait when sync is empty has passed."""
        return self._clock() >= self._opens

    def register(self, app, instance):
        """Add or replace an instance (its own status, or an override an operator set earlier)."""
        app = app.upper()
        instance = dict(instance, app=app)
        iid = instance.get("instanceId") or instance.get("hostName")
        if not iid:
            return False
        lease = instance.get("leaseInfo") or {}
        duration = float(lease.get("durationInSecs") or 90)
        with self._lock:
            entries = self._apps.setdefault(app, {})
            override = entries.get(iid, {}).get("override")
            entries[iid] = {"instance": instance, "renewed": self._clock(), "duration": duration, "override": override}
        return True

    def renew(self, app, iid):
        with self._lock:
            entry = self._apps.get(app.upper(), {}).get(iid)
            if entry is None:
                return False
            entry["renewed"] = self._clock()
            return True

    def cancel(self, app, iid):
        with self._lock:
            return self._apps.get(app.upper(), {}).pop(iid, None) is not None

    def override(self, app, iid, status):
        """Set (a status) or remove (None) an operator's status override; False for an unknown instance."""
        with self._lock:
            entry = self._apps.get(app.upper(), {}).get(iid)
            if entry is None:
                return False
            entry["override"] = status
            return True

    def evict(self):
        """Drop every lease not renewed within its duration; returns the ids dropped."""
        now, dropped = self._clock(), []
        with self._lock:
            for entries in self._apps.values():
                for iid in [i for i, e in entries.items() if now - e["renewed"] > e["duration"]]:
                    del entries[iid]
                    dropped.append(iid)
        return dropped

    @staticmethod
    def _shown(entry):
        instance = dict(entry["instance"])
        if entry["override"]:
            instance["overriddenStatus"] = instance["status"] = entry["override"]
        return instance

    def application(self, app):
        with self._lock:
            entries = self._apps.get(app.upper()) or {}
            if not entries:
                return None
            return {"name": app.upper(), "instance": [self._shown(e) for _, e in sorted(entries.items())]}

    def applications(self):
        with self._lock:
            names = sorted(name for name, entries in self._apps.items() if entries)
        apps = [a for a in (self.application(name) for name in names) if a]
        return {"applications": {"versions__delta": "1", "apps__hashcode": "", "application": apps}}


def evict_leases(cfg, registry):
    """The Eureka server's eviction timer: every cfg.eureka_eviction seconds, until STOP."""
    while not STOP.wait(cfg.eureka_eviction):
        for iid in registry.evict():
            log("%s: evicted %s (its lease expired)" % (cfg.service, iid))


class EurekaClient:
    """A service's registration with the Eureka server at cfg.eureka_url (Spring Cloud Netflix's client)."""

    def __init__(self, cfg, is_up):
        self.cfg, self.is_up = cfg, is_up
        self.app = cfg.service.upper()
        self.instance_id = "%s:%s:%d" % (cfg.hostname, cfg.service, cfg.port)
        self.status = None
        self._stop = threading.Event()

    def _instance(self, status):
        try:
            address = self.cfg.instance_address or socket.gethostbyname(self.cfg.hostname)
        except OSError:
            address = "127.0.0.1"
        return {"instance": {
            "instanceId": self.instance_id, "hostName": address, "app": self.app, "ipAddr": address,
            "vipAddress": self.cfg.service, "status": status,
            "port": {"$": self.cfg.port, "@enabled": "true"}, "securePort": {"$": 443, "@enabled": "false"},
            "healthCheckUrl": "http://%s:%d%s" % (address, self.cfg.port, self.cfg.health_path),
            "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"},
            "leaseInfo": {"renewalIntervalInSecs": self.cfg.eureka_renew, "durationInSecs": round(3 * self.cfg.eureka_renew, 3)},
        }}

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.cfg.eureka_url + path, data=data, method=method, headers={
            "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, ValueError):
            return None

    def register(self):
        status = "UP" if self.is_up() else "DOWN"
        code = self._call("POST", "/apps/" + self.app, self._instance(status))
        if code is not None and code < 300:
            if status != self.status:
                log("%s: registered with %s as %s (%s)" % (self.cfg.service, self.cfg.eureka_url, self.instance_id, status))
            self.status = status
            return True
        return False

    def run(self):
        """Register, then renew every cfg.eureka_renew seconds until stopped; register again when the
        server does not know the instance (404) or the service's health changed."""
        while not self._stop.is_set():
            if self.status is None or ("UP" if self.is_up() else "DOWN") != self.status:
                self.register()
            elif self._call("PUT", "/apps/%s/%s" % (self.app, self.instance_id)) == 404:
                self.status = None
                continue
            self._stop.wait(self.cfg.eureka_renew if self.status is not None else 1)

    def start(self):
        threading.Thread(target=self.run, daemon=True).start()

    def cancel(self):
        self._stop.set()
        code = self._call("DELETE", "/apps/%s/%s" % (self.app, self.instance_id))
        log("%s: cancelled its registration (%s)" % (self.cfg.service, code))


class LoadBalancer:
    """The gateway's view of the services behind it (Spring Cloud LoadBalancer over the Eureka client).

    target(uri) -> (host, port) or None. For lb://NAME the UP instances of NAME are fetched from the
    Eureka server at cfg.eureka_url (GET /apps/NAME) and kept for cfg.lb_cache_ttl seconds, an empty
    list too, then taken in turn; a registry that does not answer leaves the list as it was (the
    Eureka client keeps its copy). For http://HOST:PORT the addresses HOST resolves to (Docker's
    DNS) are kept for cfg.dns_cache_ttl seconds and taken in turn, as the JVM keeps a lookup
    (networkaddress.cache.ttl); a name that does not resolve is looked up again at the next call,
    and the call fails.
    """

    def __init__(self, cfg, clock=time.monotonic):
        self.cfg, self._clock = cfg, clock
        self._cache = {}  # NAME -> (fetched at, [(host, port)], itertools.count)
        self._dns = {}  # (HOST, PORT) -> (looked up at, [address], itertools.count)
        self._lock = threading.Lock()

    def _resolve(self, host, port):
        with self._lock:
            looked_up, addresses, turn = self._dns.get((host, port), (None, [], None))
            if looked_up is None or self._clock() - looked_up >= self.cfg.dns_cache_ttl:
                try:
                    addresses = sorted({a[4][0] for a in socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)})
                except OSError:
                    addresses = []
                turn = itertools.count()
                if addresses:
                    self._dns[(host, port)] = (self._clock(), addresses, turn)
            return (addresses[next(turn) % len(addresses)], port) if addresses else (host, port)

    def _fetch(self, name):
        request = urllib.request.Request("%s/apps/%s" % (self.cfg.eureka_url, name.upper()),
                                         headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                instances = json.loads(response.read().decode()).get("application", {}).get("instance", [])
        except urllib.error.HTTPError as exc:
            return [] if exc.code == 404 else None  # 404: the registry knows no such app
        except (OSError, ValueError, AttributeError):
            return None  # no answer: the Eureka client keeps the registry copy it has
        return [(i.get("ipAddr") or i.get("hostName"), int(i["port"]["$"])) for i in instances
                if i.get("status") == "UP" and isinstance(i.get("port"), dict)]

    def target(self, uri):
        parts = urlsplit(uri)
        if parts.scheme != "lb":
            return self._resolve(parts.hostname, parts.port or 80)
        with self._lock:
            fetched, instances, turn = self._cache.get(parts.hostname, (None, [], None))
            if fetched is None or self._clock() - fetched >= self.cfg.lb_cache_ttl:
                found = self._fetch(parts.hostname)
                if found is not None:
                    instances, turn = found, itertools.count()
                self._cache[parts.hostname] = (self._clock(), instances, turn or itertools.count())
            return instances[next(turn) % len(instances)] if instances else None


def missing_required(env):
    keys = [k.strip() for k in (env.get("STANDIN_REQUIRED_ENV") or "").split(",")]
    return [k for k in keys if k and not (env.get(k) or "").strip()]


class Backends:
    """PostgreSQL and Redis access. PostgreSQL through a fixed pool of connections opened once,
    as HikariCP keeps them: an open connection outlives a password change of its role, and a
    connection a database restart broke is replaced on its next use."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._redis = None
        self._pool = queue.Queue()
        if cfg.database_url:
            import psycopg2  # noqa: F401  (fail early if the package is absent)
        if cfg.redis_url:
            import redis
            self._redis = redis.Redis.from_url(
                cfg.redis_url, socket_timeout=2, socket_connect_timeout=2)

    def db_connect(self):
        import psycopg2
        return psycopg2.connect(self.cfg.database_url, connect_timeout=3)

    def wait_for_db(self):
        """Retry until the database answers, then create the items table."""
        deadline = time.monotonic() + self.cfg.db_wait
        attempt = 0
        while not STOP.is_set():
            attempt += 1
            try:
                conn = self.db_connect()
                try:
                    with conn:
                        with conn.cursor() as cur:
                            cur.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
                            cur.execute(TABLE_DDL)
                finally:
                    conn.close()
                log("%s: database ready (table items present) after %d attempt(s)"
                    % (self.cfg.service, attempt))
                return True
            except Exception as exc:  # psycopg2.OperationalError and friends
                if time.monotonic() >= deadline:
                    log("%s: database not reachable after %.0f s: %s"
                        % (self.cfg.service, self.cfg.db_wait, _one_line(exc)), sys.stderr)
                    return False
                log("%s: waiting for database (attempt %d): %s"
                    % (self.cfg.service, attempt, _one_line(exc)))
                STOP.wait(1)
        return False

    def fill_pool(self):
        """Open the pool's connections (after wait_for_db has seen the database answer)."""
        for _ in range(self.cfg.db_pool):
            self._pool.put(self.db_connect())

    def with_db(self, work):
        """Run work(conn) on a pooled connection and return its result. A connection that fails
        (a database restart) is replaced and work runs once more; the pool keeps its size."""
        import psycopg2

        conn = self._pool.get(timeout=30)  # HikariCP's connectionTimeout
        try:
            if conn.closed:
                conn = self.db_connect()
            try:
                return work(conn)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                if not conn.closed:
                    conn.close()
                conn = self.db_connect()
                return work(conn)
        finally:
            if not conn.closed:
                try:
                    conn.rollback()  # end the transaction a read opened
                except Exception:
                    conn.close()
            self._pool.put(conn if not conn.closed else _Closed())

    def check(self):
        comps = {}
        if self.cfg.database_url:
            def ping(conn):
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchone()
            try:
                self.with_db(ping)
                comps["db"] = "UP"
            except Exception:
                comps["db"] = "DOWN"
        if self._redis is not None:
            try:
                comps["redis"] = "UP" if self._redis.ping() else "DOWN"
            except Exception:
                comps["redis"] = "DOWN"
        return comps

    def insert_item(self, body):
        def insert(conn):
            with conn:
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO items (body) VALUES (%s) RETURNING id, created_at",
                                (body,))
                    return cur.fetchone()
        row = self.with_db(insert)
        return {"id": row[0], "body": body, "created_at": row[1].isoformat()}

    def list_items(self):
        def select(conn):
            with conn.cursor() as cur:
                cur.execute("SELECT id, body, created_at FROM items ORDER BY id")
                return cur.fetchall()
        rows = self.with_db(select)
        return [{"id": r[0], "body": r[1], "created_at": r[2].isoformat() if r[2] else None}
                for r in rows]

    def with_redis(self, work):
        """Run work(client); while Redis restarts (a recreated container), retry for up to
        REDIS_RECONNECT seconds, as Lettuce queues commands while it reconnects."""
        import redis

        deadline = time.monotonic() + REDIS_RECONNECT
        while True:
            try:
                return work(self._redis)
            except (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError):
                if time.monotonic() >= deadline or STOP.is_set():
                    raise
                time.sleep(0.2)

    def incr_session(self):
        return int(self.with_redis(lambda client: client.incr("sgivu:standin:%s:session" % self.cfg.service)))


class _Closed:
    """Stands in the pool for a connection that could not be reopened; its next use opens one."""

    closed = True

    def close(self):
        pass


def _one_line(exc):
    return " ".join(str(exc).split()) or exc.__class__.__name__


class Faults:
    """The release's own faults, for requests other than the health check: a fixed delay, and a
    share of answers that are 500s, spread evenly (request n fails when n * share passes a whole
    number), so that a test sees the share it asked for over any run of requests."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.count = 0
        self.lock = threading.Lock()

    def fails(self):
        """Wait the release's latency; True when this request is one of the failing share."""
        if self.cfg.latency:
            time.sleep(self.cfg.latency)
        if not self.cfg.fail_share:
            return False
        with self.lock:
            self.count += 1
            n = self.count
        return int(n * self.cfg.fail_share) > int((n - 1) * self.cfg.fail_share)


class Connections:
    """The open client connections, and which of them wait idle for their next request.

    On shutdown the idle ones are closed (their next read ends), and a busy one closes once it has
    answered, saying ``Connection: close``: what Tomcat's graceful shutdown does to keep-alive
    connections, so no caller waits on a connection that will never answer."""

    def __init__(self):
        self._lock = threading.Lock()
        self._open = {}  # handler -> busy

    def opened(self, handler):
        with self._lock:
            self._open[handler] = False

    def closed(self, handler):
        with self._lock:
            self._open.pop(handler, None)

    def busy(self, handler, busy):
        with self._lock:
            if handler in self._open:
                self._open[handler] = busy
            idle = not busy and STOP.is_set()
        if idle:
            self._close(handler)

    def close_idle(self):
        with self._lock:
            idle = [handler for handler, busy in self._open.items() if not busy]
        for handler in idle:
            self._close(handler)

    @staticmethod
    def _close(handler):
        try:
            handler.connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass


def service_is_up(cfg, components):
    """What the health endpoint says: healthy by configuration and every backend (``components``) UP."""
    return cfg.healthy and not cfg.never_healthy and all(v == "UP" for v in components.values())


def make_handler(cfg, backends, segments=None, connections=None, registry=None):
    faults = Faults(cfg)
    connections = connections or Connections()
    balancer = LoadBalancer(cfg)

    class Handler(BaseHTTPRequestHandler):
        server_version = "sgivu-standin/" + cfg.version
        sys_version = ""
        # Keep-alive, as Tomcat answers: Nginx keeps its upstream connections (its `keepalive`).
        protocol_version = "HTTP/1.1"
        timeout = cfg.keepalive_timeout  # seconds of socket inactivity before a client is dropped

        def setup(self):
            BaseHTTPRequestHandler.setup(self)
            connections.opened(self)

        def finish(self):
            connections.closed(self)
            BaseHTTPRequestHandler.finish(self)

        # --- helpers -------------------------------------------------------
        def _send(self, code, payload, content_type="application/json"):
            if isinstance(payload, (dict, list)):
                data = (json.dumps(payload) + "\n").encode()
            else:
                data = str(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Standin-Service", cfg.service)
            if STOP.is_set():  # shutting down: this connection takes no further request
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length).decode("utf-8", "replace") if length > 0 else ""

        def _echo(self):
            self._send(200, {"service": cfg.service, "version": cfg.version,
                             "path": self.path, "method": self.command,
                             "hostname": cfg.hostname})

        def log_message(self, fmt, *args):
            log("%s %s %s" % (cfg.service, self.address_string(), fmt % args))

        def log_request(self, code="-", size="-"):
            # A health probe is logged only when its answer changes, as Spring Boot's actuator logs
            # none: a probe every second would push what the service said out of the log tail that
            # a failed deploy shows.
            if urlsplit(getattr(self, "path", "") or "").path != cfg.health_path:
                BaseHTTPRequestHandler.log_request(self, code, size)
                return
            with health_answers["lock"]:
                before, health_answers["last"] = health_answers["last"], str(code)
            if before != str(code):
                log("%s: health check answered %s (%s)" % (
                    cfg.service, code, "the first probe" if before is None else "was %s" % before))

        def parse_request(self):
            self._started = time.time()
            connections.busy(self, True)
            return BaseHTTPRequestHandler.parse_request(self)

        def handle_one_request(self):
            # Trace every request but the health check, as an instrumented service does; a request
            # that could not be parsed (400, 414, 505) never reached the application.
            self.command, self._status = None, None
            BaseHTTPRequestHandler.handle_one_request(self)
            path = urlsplit(self.path).path if self.command and getattr(self, "path", None) else ""
            if self._status is not None and self.command and path != cfg.health_path:
                send_segment(cfg, xray_segment(cfg, self.command, path, self._status, self._started, time.time()))
            if STOP.is_set():
                self.close_connection = True
            connections.busy(self, False)  # idle until the next request line (closed now if stopping)

        def send_response(self, code, message=None):
            self._status = code
            BaseHTTPRequestHandler.send_response(self, code, message)

        # --- the Eureka server (sgivu-discovery) ------------------------------
        def _eureka(self):
            """The registry's REST subset under /eureka/apps; False when the path is not one."""
            parts = urlsplit(self.path)
            if registry is None or not (parts.path + "/").startswith("/eureka/apps/"):
                return False
            names = [p for p in parts.path[len("/eureka/apps"):].split("/") if p]
            value = (re.search(r"(?:^|&)value=([A-Z_]+)", parts.query) or [None, None])[1]
            body = self._read_body() if self.command in ("POST", "PUT", "DELETE") else ""
            method, known = self.command, None
            if method in ("GET", "HEAD") and not registry.readable():
                return self._send(403, {"error": "the registry is not open for reads yet (wait when sync is empty)"}) or True
            if method in ("GET", "HEAD") and not names:
                return self._send(200, registry.applications()) or True
            if method in ("GET", "HEAD") and len(names) == 1:
                app = registry.application(names[0])
                return self._send(200 if app else 404, {"application": app} if app else {"error": "unknown app"}) or True
            if method == "POST" and len(names) == 1:
                try:
                    instance = json.loads(body or "{}").get("instance")
                except (ValueError, AttributeError):
                    instance = None
                ok = isinstance(instance, dict) and registry.register(names[0], instance)
                return self._send(204 if ok else 400, "" if ok else {"error": "no instance in the body"}) or True
            if method == "PUT" and len(names) == 2:
                known = registry.renew(*names)
            elif method == "DELETE" and len(names) == 2:
                known = registry.cancel(*names)
            elif method == "PUT" and len(names) == 3 and names[2] == "status" and value:
                known = registry.override(names[0], names[1], value)
            elif method == "DELETE" and len(names) == 3 and names[2] == "status":
                known = registry.override(names[0], names[1], None)
            else:
                return self._send(400, {"error": "not an operation of this Eureka server"}) or True
            return self._send(200 if known else 404, "" if known else {"error": "unknown instance"}) or True

        # --- the gateway's routes (STANDIN_ROUTES) ---------------------------
        def _forward(self):
            """Send a request under a route's prefix on to its service and relay the answer;
            False when no route takes the path."""
            path = urlsplit(self.path).path
            uri = next((u for p, u in cfg.routes if path == p or path.startswith(p.rstrip("/") + "/")), None)
            if uri is None:
                return False
            body = self._read_body() if self.command in ("POST", "PUT", "PATCH", "DELETE") else ""
            target = balancer.target(uri)
            if target is None:
                self._send(503, {"error": "no instance of %s is available" % urlsplit(uri).hostname})
                return True
            headers = {"Accept": self.headers.get("Accept") or "*/*",
                       "X-Forwarded-For": self.client_address[0]}
            if self.headers.get("Content-Type"):
                headers["Content-Type"] = self.headers["Content-Type"]
            connection = http.client.HTTPConnection(target[0], target[1], timeout=30)
            try:
                connection.request(self.command, self.path, body.encode() if body else None, headers)
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                self._send(502, {"error": "%s at %s:%d: %s" % (uri, target[0], target[1], _one_line(exc))})
                return True
            finally:
                connection.close()
            self._send(answer.status, data.decode("utf-8", "replace"),
                       answer.getheader("Content-Type") or "application/octet-stream")
            return True

        # --- routes --------------------------------------------------------
        def _health(self):
            comps = backends.check()
            up = service_is_up(cfg, comps)
            body = {"status": "UP" if up else "DOWN", "service": cfg.service,
                    "version": cfg.version}
            if comps:
                body["components"] = comps
            self._send(200 if up else 503, body)

        def _faulty(self):
            """Answer 500 for the release's failing share (after its latency); True when it did."""
            if faults.fails():
                self._send(500, {"error": "injected failure", "service": cfg.service, "version": cfg.version})
                return True
            return False

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == cfg.health_path:
                return self._health()
            if self._eureka():
                return None
            if self._faulty():
                return None
            if self._forward():
                return None
            if path == "/version":
                return self._send(200, cfg.version + "\n", "text/plain; charset=utf-8")
            if path == "/segments" and segments is not None:
                return self._send(200, segments.snapshot())
            if path == "/actuator/env":
                return self._send(200, {"activeProfiles": ["standin"], "propertySources": [],
                                        "service": cfg.service})
            if path == "/items":
                if not cfg.database_url:
                    return self._send(503, {"error": "no database configured"})
                try:
                    return self._send(200, backends.list_items())
                except Exception as exc:
                    return self._send(503, {"error": "database: " + _one_line(exc)})
            # Behind a proxy prefix too (/v1/session, /auth/session): the BFF's session endpoint.
            if path == "/session" or path.endswith("/session"):
                if not cfg.redis_url:
                    return self._send(503, {"error": "no redis configured"})
                try:
                    return self._send(200, {"service": cfg.service, "hostname": cfg.hostname,
                                            "counter": backends.incr_session()})
                except Exception as exc:
                    return self._send(503, {"error": "redis: " + _one_line(exc)})
            return self._echo()

        do_HEAD = do_GET

        def do_POST(self):
            path = urlsplit(self.path).path
            if self._eureka():
                return None
            if self._faulty():
                self._read_body()
                return None
            if self._forward():
                return None
            if path == "/items":
                body = self._read_body()
                if not cfg.database_url:
                    return self._send(503, {"error": "no database configured"})
                try:
                    return self._send(201, backends.insert_item(body))
                except Exception as exc:
                    return self._send(503, {"error": "database: " + _one_line(exc)})
            self._read_body()
            return self._echo()

        def do_PUT(self):
            if self._eureka():
                return None
            if self._faulty():
                self._read_body()
                return None
            if self._forward():
                return None
            self._read_body()
            return self._echo()

        do_DELETE = do_PUT
        do_PATCH = do_PUT

    return Handler


def _expand(value, env):
    """Replace $KEY / ${KEY} in the URL value with env[KEY], percent-encoded (a password may hold
    '@', '/' or '#'; libpq and redis-py decode it); None for an empty value."""
    if not value:
        return None
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                  lambda m: quote(env.get(m.group(1), ""), safe=""), value)


class Server(ThreadingHTTPServer):
    daemon_threads = False     # server_close() joins in-flight request threads
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """A client that drops its connection (a health probe killed at its timeout, Nginx
        closing an idle upstream) is routine: Tomcat logs nothing, so neither does this.
        Anything else keeps socketserver's traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        ThreadingHTTPServer.handle_error(self, request, client_address)


def main():
    env = os.environ
    missing = missing_required(env)
    if missing:
        sys.stderr.write("missing required environment: %s\n" % ", ".join(missing))
        sys.stderr.flush()
        return EXIT_BAD_CONFIG

    try:
        cfg = Config(env)
    except ValueError as exc:
        sys.stderr.write("bad configuration: %s\n" % exc)
        sys.stderr.flush()
        return EXIT_BAD_CONFIG
    server_box = {}
    connections = Connections()

    def stop(srv):
        srv.shutdown()  # no new connection; then the idle keep-alive ones end
        connections.close_idle()

    def on_signal(signum, _frame):
        if STOP.is_set():
            return
        STOP.set()
        log("%s: received %s, shutting down" % (cfg.service, signal.Signals(signum).name))
        srv = server_box.get("server")
        if srv is not None:
            # shutdown() blocks until serve_forever() returns: call it off the main thread.
            threading.Thread(target=stop, args=(srv,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    log("%s %s starting (port %d, health %s, delay %.1fs%s)" % (
        cfg.service, cfg.version, cfg.port, cfg.health_path, cfg.startup_delay,
        ", never healthy" if cfg.never_healthy else ""))

    backends = Backends(cfg)
    if cfg.startup_delay > 0 and STOP.wait(cfg.startup_delay):
        return 0
    if cfg.database_url and not backends.wait_for_db():
        return 0 if STOP.is_set() else 1
    if cfg.database_url:
        backends.fill_pool()
    if STOP.is_set():
        return 0

    segments = SegmentStore() if cfg.xray_daemon else None
    if segments is not None:
        threading.Thread(target=serve_segments, args=(cfg, segments), daemon=True).start()
    registry = Registry(closed_for=cfg.eureka_closed_for) if cfg.eureka_server else None
    if registry is not None:
        threading.Thread(target=evict_leases, args=(cfg, registry), daemon=True).start()
    server = Server((cfg.bind, cfg.port), make_handler(cfg, backends, segments, connections, registry))
    server_box["server"] = server
    log("%s %s listening on %s:%d" % (cfg.service, cfg.version, cfg.bind, cfg.port))
    if STOP.is_set():  # signal arrived between bind and serve_forever
        server.server_close()
        return 0
    client = None
    if cfg.eureka_url and not cfg.eureka_server:
        # Without eureka.client.healthcheck Spring registers UP once started, whatever its health says.
        client = EurekaClient(cfg, (lambda: service_is_up(cfg, backends.check())) if cfg.eureka_healthcheck else (lambda: True))
        client.start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()  # stop accepting, join in-flight requests
        if client is not None:  # then deregister, as Spring does after its web server stopped
            client.cancel()
    log("%s: stopped" % cfg.service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
