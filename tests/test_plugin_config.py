"""The plugin configuration: a broken one is refused when Envoy loads the filter, with the
JSON path of the offending field. (The JSON Schema agrees: tests/test_deployment.py; what
only the native module refuses: tests/test_native.py.)"""
import json

import pytest

from harness import NATIVE, shipped_config, validate_config


@pytest.mark.parametrize("plugin_config,path,fragment", [
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c", "colour": "red"}]},
     "providers[0].colour", "unknown field `colour`"),
    ({"providers": [{"name": "a", "type": "mystery", "cluster": "c"}]}, "providers[0].type", "unknown variant"),
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c"}],
      "models": [{"match": "m", "provider": "zzz"}]}, "models[0].provider", 'unknown provider "zzz"'),
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c"}], "max_request_bytes": "lots"},
     "max_request_bytes", "invalid type"),
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c"}],
      "access_log_attributes": ["provider", "tokens"]}, "access_log_attributes[1]", "unknown variant `tokens`"),
])
def test_bad_plugin_config_is_rejected_at_load(plugin_config, path, fragment):
    cfg = shipped_config()
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = hcm["http_filters"][0]["typed_config"]["config"]
    wasm["vm_config"]["code"]["local"]["filename"] = str(__import__("harness").WASM)
    wasm["configuration"]["value"] = json.dumps(plugin_config)
    result = validate_config(cfg)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert f"invalid llm-gateway configuration at `{path}`" in out, out
    assert fragment in out, out
    assert ("dynamic module" if NATIVE else "unable to create wasm") in out.lower(), out
