#!/usr/bin/env python3
"""Derives the container Envoy configs from envoy/envoy.yaml (the config `make run` uses).

    deploy/compose/envoy.yaml               docker compose: gateway on 0.0.0.0:10000
    deploy/kubernetes/envoy-configmap.yaml  Kubernetes sidecar: gateway on 127.0.0.1:10000

Both get the filter from /var/lib/llm-gateway/plugin.wasm (a bind mount in compose, an
emptyDir filled by an init container in Kubernetes) and an "ops" listener on 0.0.0.0:9902
that serves only /healthz (liveness), /ready and /stats/prometheus (proxied to the admin
interface, which stays on 127.0.0.1). Everything else — the plugin configuration, stats
tags, routes, access log, clusters — is copied from envoy/envoy.yaml unchanged.

Usage:  python3 deploy/generate.py          rewrite the files (`make deploy-configs`)
        python3 deploy/generate.py --check  exit 1 if a file is out of date (run by the tests)

The derivation is a handful of exact text substitutions, so comments survive; each must
match exactly once, and the script fails loudly if envoy/envoy.yaml changed shape.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "envoy" / "envoy.yaml"
COMPOSE = ROOT / "deploy" / "compose" / "envoy.yaml"
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "envoy-configmap.yaml"

# Where the filter is mounted in the containers (compose, Kubernetes).
CONTAINER_WASM = "/var/lib/llm-gateway/plugin.wasm"
SOURCE_WASM = "target/wasm32-wasip1/release/llm_gateway.wasm"
OPS_PORT = 9902

GATEWAY_ADDRESS = "socket_address: { address: 127.0.0.1, port_value: 10000 }"

OPS_LISTENER = f"""\
    # Operations port, reachable from outside the container/pod: /healthz (liveness: a
    # worker answers), /ready (readiness: Envoy's admin /ready, LIVE once the listeners and
    # the Wasm filter are up, 503 while draining) and /stats/prometheus (metrics). The admin
    # interface itself stays on 127.0.0.1; no other admin path is exposed.
    - name: ops
      address:
        socket_address: {{ address: 0.0.0.0, port_value: {OPS_PORT} }}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ops
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
                route_config:
                  name: ops_routes
                  virtual_hosts:
                    - name: ops
                      domains: ["*"]
                      routes:
                        - match: {{ path: /healthz }}
                          direct_response: {{ status: 200, body: {{ inline_string: "ok\\n" }} }}
                        - match: {{ path: /ready }}
                          route: {{ cluster: envoy_admin }}
                        - match: {{ path: /stats/prometheus }}
                          route: {{ cluster: envoy_admin }}

"""

ADMIN_CLUSTER = """\
    # The admin interface, for the ops listener's /ready and /stats/prometheus.
    - name: envoy_admin
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: envoy_admin
        endpoints:
          - lb_endpoints:
              - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9901 } } }

"""

RATELIMIT_CLUSTER = """\
    # envoyproxy/ratelimit (gRPC, domain `llm-gateway`, backed by Redis) for cluster-wide
    # quotas. Wired but not used yet: the quota feature will call it (docs/deployment.md).
    - name: ratelimit
      type: STRICT_DNS
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http2_protocol_options: {} }
      load_assignment:
        cluster_name: ratelimit
        endpoints:
          - lb_endpoints:
              - endpoint: { address: { socket_address: { address: ratelimit, port_value: 8081 } } }

"""


def replace_once(text: str, old: str, new: str) -> str:
    n = text.count(old)
    if n != 1:
        raise SystemExit(f"deploy/generate.py: expected exactly one {old!r} in {SOURCE.name}, found {n}; "
                         "update deploy/generate.py to the new shape of envoy/envoy.yaml")
    return text.replace(old, new)


def body_of_source() -> str:
    """envoy/envoy.yaml without its leading comment block."""
    text = SOURCE.read_text()
    start = text.index("\nadmin:") + 1
    return text[start:]


def derive(header: str, gateway_address: str, extra_clusters: str) -> str:
    text = body_of_source()
    text = replace_once(text, GATEWAY_ADDRESS,
                        f"socket_address: {{ address: {gateway_address}, port_value: 10000 }}")
    text = replace_once(text, f"local: {{ filename: {SOURCE_WASM} }}",
                        f"local: {{ filename: {CONTAINER_WASM} }}")
    text = replace_once(text, "\n  listeners:\n", "\n  listeners:\n" + OPS_LISTENER)
    text = replace_once(text, "\n  clusters:\n", "\n  clusters:\n" + ADMIN_CLUSTER + extra_clusters)
    return header + text


GENERATED = ("# GENERATED from envoy/envoy.yaml by deploy/generate.py — do not edit by hand;\n"
             "# change envoy/envoy.yaml and run `make deploy-configs`.\n#\n")


def compose_config() -> str:
    header = GENERATED + f"""\
# docker compose (docker-compose.yml): Envoy 1.40 with the llm-gateway filter mounted at
# {CONTAINER_WASM}.
#
#   0.0.0.0:10000  the gateway (published on the host as 127.0.0.1:10000)
#   0.0.0.0:{OPS_PORT}   /healthz, /ready, /stats/prometheus (scraped by Prometheus)
#   127.0.0.1:9901 Envoy admin, inside the container only
#   127.0.0.1:10001 built-in demo provider (serves every model while OPENAI_API_KEY is unset)
"""
    return derive(header, "0.0.0.0", RATELIMIT_CLUSTER)


def sidecar_config() -> str:
    header = GENERATED + f"""\
# Kubernetes sidecar: the gateway listens on 127.0.0.1:10000, so only the application in
# the same pod can use it (it adds provider keys to every request it routes; never expose
# it to the cluster without authentication). Port {OPS_PORT} serves the kubelet probes and
# Prometheus. The filter is copied to {CONTAINER_WASM} by the init container.
"""
    return derive(header, "127.0.0.1", "")


def configmap() -> str:
    envoy_yaml = sidecar_config()
    indented = "".join(("    " + line) if line.strip() else line for line in envoy_yaml.splitlines(True))
    return (GENERATED.replace("# GENERATED", "# GENERATED (data.envoy.yaml)") + """\
# The Envoy config of the sidecar in deployment.yaml, mounted at /etc/envoy/envoy.yaml.
apiVersion: v1
kind: ConfigMap
metadata:
  name: llm-gateway-envoy
  labels:
    app.kubernetes.io/name: llm-app
    app.kubernetes.io/component: llm-gateway
data:
  envoy.yaml: |
""" + indented)


def outputs() -> dict[Path, str]:
    return {COMPOSE: compose_config(), CONFIGMAP: configmap()}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date with envoy/envoy.yaml (run `make deploy-configs`): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
