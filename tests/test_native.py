"""The native build (libllm_gateway.so, an Envoy dynamic module) in real Envoy: what differs
from the Wasm filter. The rest of the suite runs against it too (`make integration-native`,
LLMGW_FILTER=native)."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from harness import (NATIVE_METRIC_PREFIX, ROOT, Envoy, request, shipped_config, shipped_plugin_config,
                     use_native, validate_config)

OPENAI = {"name": "a", "type": "openai", "cluster": "c"}


def native_config(plugin: dict) -> dict:
    cfg = shipped_config()
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            f["typed_config"]["config"]["configuration"]["value"] = json.dumps(plugin)
    use_native(cfg)
    return cfg


CONSUMERS = [{"name": "team", "key_sha256": "0" * 64}]
RULES = [{"name": "day", "limit": 1000, "window": "day", "group_by": ["consumer"]}]


@pytest.mark.parametrize("plugin, path", [
    ({"providers": [OPENAI], "consumers": CONSUMERS,
      "quotas": {"rules": RULES, "mode": "global", "global": {"cluster": "rls"}}}, "quotas.global"),
    ({"providers": [OPENAI], "consumers": CONSUMERS,
      "identity": {"jwt": {"payload_in_metadata": "jwt", "claim": "sub"}}}, "identity.jwt"),
    ({"providers": [{"name": "v", "type": "vertex", "cluster": "c", "project": "p", "region": "r",
                     "token_endpoint": {"cluster": "md"}}]}, "providers[0].token_endpoint"),
])
def test_what_the_native_module_lacks_is_refused_at_load_with_the_field(plugin, path):
    result = validate_config(native_config(plugin), native=True)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert f"invalid llm-gateway configuration at `{path}`" in out, out
    assert "native (dynamic module) build" in out, out


def test_shipped_plugin_config_loads_in_the_native_module():
    result = validate_config(native_config(shipped_plugin_config()), native=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_native_metrics_carry_real_envoy_labels(mock):
    """The module defines its metric families with label names: Prometheus sees labels without
    any `stats_tags`, under Envoy's dynamic-module prefix."""
    def no_stats_tags(cfg):
        cfg["stats_config"].pop("stats_tags", None)
        use_native(cfg)

    plugin = {"providers": [{"name": "p", "type": "openai", "cluster": "openai"}],
              "models": [{"match": "*", "provider": "p"}]}
    with Envoy(plugin, {"openai": mock.port}, mutate=no_stats_tags) as gw:
        assert gw.chat("gpt-4o-mini")[0] == 200
        _, _, text = request("GET", gw.admin_port, "/stats/prometheus")
        lines = text.decode().splitlines()
        want = (f'{NATIVE_METRIC_PREFIX}llm_gateway_requests_total{{provider="p",model="gpt-4o-mini",'
                f'operation="chat",status_class="2xx"}} 1')
        assert want in lines, [l for l in lines if "llm_gateway" in l]
        assert gw.metric("llm_gateway_tokens_total", provider="p", model="gpt-4o-mini", type="input",
                         estimated="false") == 10


def test_the_documented_http_filters_load_in_envoy():
    """docs/native.md's `http_filters` example, as written, in the shipped listener."""
    text = (ROOT / "docs" / "native.md").read_text()
    block = re.search(r"```yaml\n(http_filters:.*?)```", text, re.S)
    assert block, "no http_filters example in docs/native.md"
    filters = yaml.safe_load(block.group(1))["http_filters"]
    assert filters[0]["typed_config"]["dynamic_module_config"]["name"] == "llm_gateway"
    cfg = shipped_config()
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = filters
    result = validate_config(cfg, native=False)  # already native: validate it as written
    assert result.returncode == 0, result.stdout + result.stderr
