"""Unit tests of the nginx role's site settings checks (plugins/module_utils/nginx_site.py)."""

from __future__ import annotations

import string

import pytest

from ansible_collections.sgivu.deploy.plugins.filter.nginx import FilterModule
from ansible_collections.sgivu.deploy.plugins.module_utils.nginx_site import site_problems

# The role's defaults (roles/nginx/defaults/main.yml), with the site name the bench uses.
DEFAULTS = {
    "nginx_site_name": "sgivu",
    "nginx_server_name": "_",
    "nginx_listen_http": 80,
    "nginx_listen_https": 443,
    "nginx_tls_enabled": False,
    "nginx_client_max_body_size": "10m",
    "nginx_forwarded_proto": "$scheme",
    "nginx_real_ip_from": [],
    "nginx_proxy_connect_timeout": 5,
    "nginx_upstream_keepalive": 16,
    "nginx_upstream_keepalive_timeout": 50,
    "nginx_upstream_log": "/var/log/nginx/sgivu.upstream.log",
    "nginx_actuator_health_paths": ["health"],
    "nginx_resolvers": [],
    "nginx_spa_mode": "none",
    "nginx_spa_s3_website_endpoint": "",
    "nginx_spa_root": "/var/www/spa",
}


def problems(**changes):
    return site_problems(dict(DEFAULTS, **changes))


def test_the_defaults_have_no_problem():
    assert problems() == []


@pytest.mark.parametrize(
    "changes",
    [
        {"nginx_server_name": "example.com www.example.com"},
        {"nginx_server_name": "*.example.com"},
        {"nginx_server_name": ".example.com"},
        {"nginx_server_name": "www.example.*"},
        {"nginx_server_name": "localhost 127.0.0.1 [::1]"},
        # helper-34: internal names with "_" and a fully qualified name with its trailing dot.
        {"nginx_server_name": "my_host.internal example.com."},
        {"nginx_client_max_body_size": "8589934591g"},
        {"nginx_resolvers": ["10.0.0.2", "ipv6=off"]},
        {"nginx_site_name": "Stack_2-b"},
        {"nginx_listen_http": "8080", "nginx_listen_https": "8443", "nginx_tls_enabled": True},
        {"nginx_client_max_body_size": 0},
        {"nginx_client_max_body_size": "512K"},
        {"nginx_client_max_body_size": "1g"},
        {"nginx_forwarded_proto": "$http_x_forwarded_proto"},
        {"nginx_forwarded_proto": "https"},
        {"nginx_real_ip_from": ["10.0.0.0/16", "10.1.2.3", "2001:db8::/32"]},
        {"nginx_proxy_connect_timeout": 75, "nginx_upstream_keepalive": "1", "nginx_upstream_keepalive_timeout": 3600},
        {"nginx_upstream_log": "/var/log/nginx/a-b_c.1.log"},
        {"nginx_actuator_health_paths": ["health", "health/liveness", "info"]},
        {"nginx_resolvers": ["169.254.169.253", "[fd00:ec2::253]:53", "fd00:ec2::253", "dns.internal:5353"]},
        {"nginx_spa_mode": "s3", "nginx_spa_s3_website_endpoint": "http://bucket.s3-website-us-east-1.amazonaws.com/"},
        {"nginx_spa_mode": "s3", "nginx_spa_s3_website_endpoint": "http://127.0.0.1:19000"},
        {"nginx_spa_mode": "local", "nginx_spa_root": "/srv/sgivu/spa/"},
        {"nginx_spa_mode": "local", "nginx_spa_root": "/usr/share/nginx/html"},
        # Only the mode in use is checked: a default of the other mode does not count.
        {"nginx_spa_mode": "none", "nginx_spa_root": "/", "nginx_spa_s3_website_endpoint": "x"},
    ],
)
def test_values_nginx_takes_are_accepted(changes):
    assert problems(**changes) == []


# What helper-33 deployed (each went live with the directive it carried), and the same kind.
@pytest.mark.parametrize(
    "changes, text",
    [
        ({"nginx_server_name": "_; return 418"}, "nginx_server_name is one or more host names"),
        ({"nginx_server_name": "a.example.com\n"}, "got 'a.example.com\\n'"),
        ({"nginx_server_name": ""}, "nginx_server_name is one or more host names"),
        ({"nginx_server_name": "a  b"}, "nginx_server_name is one or more host names"),
        ({"nginx_server_name": "~^(?<x>.+)$"}, "nginx_server_name is one or more host names"),
        ({"nginx_client_max_body_size": "10m; return 422"}, "nginx_client_max_body_size is a size such as 10m"),
        ({"nginx_client_max_body_size": "10 m"}, "nginx_client_max_body_size is a size such as 10m"),
        ({"nginx_client_max_body_size": True}, "nginx_client_max_body_size is a size such as 10m"),
        ({"nginx_forwarded_proto": "$scheme; add_header X-Pwned 1"}, "nginx_forwarded_proto is http, https, $scheme"),
        ({"nginx_forwarded_proto": "$scheme$host"}, "nginx_forwarded_proto is http, https, $scheme"),
        # helper-34: an unknown variable passed the check and failed nginx -t.
        ({"nginx_forwarded_proto": "$nosuchvar"}, "nginx_forwarded_proto is http, https, $scheme"),
        ({"nginx_client_max_body_size": "99999999999g"}, "at most 8 EiB); got '99999999999g'"),
        ({"nginx_upstream_log": "/var/log/nginx/access.log"}, "is where Nginx writes its access log"),
        ({"nginx_upstream_log": "/var/log/nginx/error.log"}, "is where Nginx writes its error log"),
        ({"nginx_resolvers": [":"]}, "nginx_resolvers entries are addresses"),
        ({"nginx_resolvers": ["abc:"]}, "nginx_resolvers entries are addresses"),
        ({"nginx_resolvers": ["1.1.1.1:99999"]}, "nginx_resolvers entries are addresses"),
        ({"nginx_resolvers": ["[fd00::zz]:53"]}, "nginx_resolvers entries are addresses"),
        ({"nginx_spa_s3_website_endpoint": "http://b.example.com:99999", "nginx_spa_mode": "s3"}, "a URL with no path"),
        ({"nginx_real_ip_from": ["0.0.0.0/0; return 424"]}, "nginx_real_ip_from is a list of addresses or CIDRs"),
        ({"nginx_real_ip_from": ["10.0.0.0/255.0.0.0"]}, "not one: '10.0.0.0/255.0.0.0'"),
        ({"nginx_real_ip_from": "10.0.0.0/16"}, "nginx_real_ip_from is a list"),
        ({"nginx_spa_mode": "local", "nginx_spa_root": "/var/www/spa; autoindex on"}, "must be a directory below"),
        ({"nginx_spa_mode": "local", "nginx_spa_root": "/"}, "must be a directory below /var/www, /srv, /opt or /usr/share/nginx"),
        ({"nginx_spa_mode": "local", "nginx_spa_root": "/etc"}, "must be a directory below"),
        ({"nginx_spa_mode": "local", "nginx_spa_root": "/var/www"}, "must be a directory below"),
        ({"nginx_spa_mode": "local", "nginx_spa_root": "/var/www/../../etc"}, "must be a directory below"),
        ({"nginx_spa_mode": "local", "nginx_spa_root": "/var/www/.git"}, "must be a directory below"),
        ({"nginx_spa_s3_website_endpoint": "http://$http_x_t", "nginx_spa_mode": "s3"}, "a URL with no path"),
        ({"nginx_spa_s3_website_endpoint": "http://b.example.com/x", "nginx_spa_mode": "s3"}, "a URL with no path"),
        ({"nginx_spa_s3_website_endpoint": "http://b.example.com\n", "nginx_spa_mode": "s3"}, "a URL with no path"),
        ({"nginx_spa_s3_website_endpoint": "http://b.example.com?x=1", "nginx_spa_mode": "s3"}, "a URL with no path"),
        ({"nginx_upstream_log": "/var/log/README"}, "nginx_upstream_log must be a file in /var/log/nginx/"),
        ({"nginx_upstream_log": "/var/log/wtmp"}, "nginx_upstream_log must be a file in /var/log/nginx/"),
        ({"nginx_upstream_log": "/var/log/nginx/../../etc/passwd"}, "nginx_upstream_log must be a file in"),
        ({"nginx_upstream_log": "/var/log/nginx/$x"}, "nginx_upstream_log must be a file in"),
        ({"nginx_upstream_log": "/var/log/nginx/" + "x" * 256}, "nginx_upstream_log must be a file in"),
        ({"nginx_listen_http": -1}, "nginx_listen_http must be a whole number of a port, 1-65535, got -1"),
        ({"nginx_listen_http": "80; x"}, "nginx_listen_http must be a whole number of a port"),
        ({"nginx_listen_https": 65536}, "nginx_listen_https must be a whole number of a port, 1-65535, got 65536"),
        ({"nginx_listen_http": True}, "nginx_listen_http must be a whole number"),
        ({"nginx_tls_enabled": True, "nginx_listen_http": 443}, "are both 443"),
        ({"nginx_proxy_connect_timeout": 76}, "nginx_proxy_connect_timeout must be a whole number of seconds, 1-75"),
        ({"nginx_upstream_keepalive": 0}, "nginx_upstream_keepalive must be a whole number of connections, 1-1024"),
        ({"nginx_upstream_keepalive_timeout": "50s"}, "nginx_upstream_keepalive_timeout must be a whole number"),
        ({"nginx_site_name": "x;y"}, "nginx_site_name names the files"),
        ({"nginx_site_name": "../../tmp/x"}, "nginx_site_name names the files"),
        ({"nginx_site_name": ""}, "nginx_site_name names the files"),
        ({"nginx_actuator_health_paths": ["health|.*"]}, "nginx_actuator_health_paths entries are endpoint names"),
        ({"nginx_actuator_health_paths": "health"}, "nginx_actuator_health_paths entries are endpoint names"),
        ({"nginx_resolvers": ["1.1.1.1 ipv6=off; x"]}, "nginx_resolvers entries are addresses or host names"),
        ({"nginx_spa_mode": "cdn"}, "nginx_spa_mode is one of s3, local or none; got 'cdn'"),
    ],
)
def test_values_that_would_add_directives_or_fail_nginx_are_named(changes, text):
    found = problems(**changes)
    assert len(found) == 1, found
    assert text in found[0] and found[0].endswith(".")


def test_every_printable_character_outside_a_host_name_is_refused_in_server_name():
    allowed = set(string.ascii_letters + string.digits + "-.")
    for char in sorted(set(string.printable) - allowed):
        if char in "_ ":
            continue  # "_" alone is the catch-all name; a space separates two names
        assert problems(nginx_server_name="a" + char + "b"), repr(char)


def test_every_problem_is_reported_at_once():
    found = problems(nginx_server_name="_;", nginx_client_max_body_size="x", nginx_listen_http=0)
    assert [problem.split(" ")[0] for problem in found] == [
        "nginx_server_name", "nginx_listen_http", "nginx_client_max_body_size"]


def test_a_setting_left_out_is_not_checked():
    assert site_problems({"nginx_server_name": "example.com"}) == []


def test_the_filter_returns_the_problems_and_refuses_a_non_mapping():
    nginx_site_problems = FilterModule().filters()["nginx_site_problems"]
    assert nginx_site_problems({"nginx_upstream_keepalive": 0})[0].startswith("nginx_upstream_keepalive must be")
    assert "must be a mapping" in nginx_site_problems(["x"])[0]


ROUTE = {"path": "/v1/", "match": "prefix", "service": "gateway", "allow": [], "timeout": 60}


@pytest.mark.parametrize(
    "route, text",
    [
        ({"timeout": 100000000000000000000}, "nginx_routes #1: timeout must be a whole number of seconds, 1-3600"),
        ({"timeout": 0}, "timeout must be a whole number of seconds, 1-3600, got 0"),
        ({"allow": ["10.0.0.0/8; return 200"]}, "nginx_routes #1: allow is a list of addresses or CIDRs"),
        ({"allow": ["10.0.0.0/255.0.0.0"]}, "not one: '10.0.0.0/255.0.0.0'"),
        ({"path": "/v1/\"; return 200; #"}, "nginx_routes #1: path must be printable ASCII of letters, digits"),
        # helper-34: hand-written routes the catalog would refuse.
        ({"path": "/v1/../x/"}, "with no '.' or '..' segment"),
        ({"path": "/a(", "match": "regex"}, "path is not a valid regular expression"),
        ({"path": "^/v1/\n", "match": "regex"}, "a regex path must be printable ASCII without a double quote"),
        ({"match": "glob"}, "match is one of prefix, exact or regex, got 'glob'"),
    ],
)
def test_routes_written_by_hand_get_the_catalogs_checks(route, text):
    found = problems(nginx_routes=[dict(ROUTE, **route)])
    assert len(found) == 1 and text in found[0], found


def test_routes_the_catalog_takes_are_accepted():
    routes = [ROUTE, dict(ROUTE, path="^/api/v[0-9]+/", match="regex", allow=["10.0.0.0/8", "::1"], timeout=3600),
              dict(ROUTE, path="/", match="exact", timeout="30")]
    assert problems(nginx_routes=routes) == []


def test_a_route_listed_twice_is_named_with_both_places():
    found = problems(nginx_routes=[ROUTE, dict(ROUTE, path="/login"), dict(ROUTE)])
    assert found == ["nginx_routes #3: path '/v1/' (match prefix) is listed twice (routes #1 and #3)."]
