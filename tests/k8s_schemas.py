"""Offline, strict validation of the Kubernetes manifests under deploy/.

Three sources of truth, picked by (apiVersion, kind); any other kind is an error:

* Core kinds (Deployment, Service, ConfigMap, Secret, Namespace, ServiceAccount):
  `kubernetes-validate --strict` (its bundled OpenAPI schemas of Kubernetes K8S_VERSION,
  where every object rejects unknown fields).
* Kinds with a CRD vendored in tests/k8s/crds/ (Istio: WasmPlugin, TrafficExtension,
  EnvoyFilter, ServiceEntry, DestinationRule, VirtualService, Gateway; Envoy Gateway:
  EnvoyExtensionPolicy; the CRDs as published, trimmed to these kinds, source and licence in
  tests/k8s/crds/README.md): the CRD's openAPIV3Schema turned into JSON Schema, with
  `additionalProperties: false` on every object the CRD does not mark
  `x-kubernetes-preserve-unknown-fields` (what the API server's strict field validation
  does), `nullable` mapped to a null type, and metadata checked as a strict ObjectMeta.
  CEL rules (`x-kubernetes-validations`) are not evaluated.
* Kinds with no CRD vendored (Gateway API: GatewayClass, Gateway, HTTPRoute,
  BackendTLSPolicy; Envoy Gateway: Backend, HTTPRouteFilter, EnvoyProxy, EnvoyPatchPolicy):
  HAND-WRITTEN minimal schemas below. They are not the CRDs and vendor nothing: written
  from the Gateway API v1.4 and Envoy Gateway API references, they list the fields these
  manifests use (plus close siblings), reject any other key in those objects, and check
  enums and types there; Kubernetes types inside them (env vars) use the core schemas.
  A field the real CRD accepts but the list lacks fails here — extend the list then.
"""
from __future__ import annotations

import functools
import importlib.resources
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

CRD_DIR = Path(__file__).resolve().parent / "k8s" / "crds"
K8S_VERSION = "1.34"
K8S_DEFS_ID = "https://kubernetes.io/api/_definitions.json"
OBJECT_META = {"$ref": K8S_DEFS_ID + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
ENV_VAR = {"$ref": K8S_DEFS_ID + "#/$defs/io.k8s.api.core.v1.EnvVar"}

CORE_KINDS = {("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"),
              ("v1", "ServiceAccount"), ("apps/v1", "Deployment")}


class ManifestError(AssertionError):
    pass


# --------------------------------------------------------------------------- registry

@functools.lru_cache(maxsize=None)
def _registry() -> Registry:
    """The strict Kubernetes definitions kubernetes-validate ships (for ObjectMeta, EnvVar)."""
    files = importlib.resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    version = [v for v in kubernetes_validate.utils.all_versions() if v.startswith(K8S_VERSION + ".")][-1]
    defs = json.loads(files.joinpath(f"v{version}-local-strict", "_definitions.json").read_text())
    assert defs["$id"] == K8S_DEFS_ID, defs["$id"]
    return Resource.from_contents(defs) @ Registry()


# --------------------------------------------------------------------------- CRDs

def crd_to_json_schema(node, structural: bool = True):
    """One CRD openAPIV3Schema node as JSON Schema (see the module docstring).

    `structural` is false inside oneOf/anyOf/allOf/not: those branches only add value
    checks to the object they sit in and must not forbid its other fields."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: crd_to_json_schema(sub, True) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = crd_to_json_schema(value, True)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [crd_to_json_schema(sub, False) for sub in value]
        elif key == "not":
            out[key] = crd_to_json_schema(value, False)
        elif key == "nullable" or key.startswith("x-kubernetes-"):
            continue
        else:
            out[key] = value
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    is_object = out.get("type") == "object" or "properties" in out
    if (structural and is_object and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def _root_schema(openapi: dict, api_version: str, kind: str) -> dict:
    schema = crd_to_json_schema(openapi)
    props = schema.setdefault("properties", {})
    # The API server handles these for every kind, whatever the CRD says about them.
    props["apiVersion"] = {"const": api_version}
    props["kind"] = {"const": kind}
    props["metadata"] = OBJECT_META
    schema["additionalProperties"] = False
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
    return schema


@functools.lru_cache(maxsize=None)
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> JSON Schema, for every served version of every vendored CRD."""
    if not CRD_DIR.is_dir():
        raise ManifestError(
            f"CRD definitions not found at {CRD_DIR}: the manifest tests read the CRDs vendored "
            "in the repository under tests/k8s/crds/ (see its README.md).")
    out = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                api_version = f"{group}/{version['name']}"
                out[(api_version, kind)] = _root_schema(
                    version["schema"]["openAPIV3Schema"], api_version, kind)
    if not out:
        raise ManifestError(f"no CustomResourceDefinitions in {CRD_DIR} (tests/k8s/crds/, see its README.md)")
    return out


# --------------------------------------------------------------------------- hand-written

def obj(properties: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "required": list(required)}


def arr(items: dict) -> dict:
    return {"type": "array", "items": items}


STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
ANY = {}
STR_MAP = {"type": "object", "additionalProperties": STR}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
DURATION = {"type": "string", "pattern": r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"}
PARENT_REF = obj({"group": STR, "kind": STR, "namespace": STR, "name": STR, "sectionName": STR,
                  "port": PORT}, ("name",))
LOCAL_REF = obj({"group": STR, "kind": STR, "name": STR}, ("group", "kind", "name"))
BACKEND_REF = obj({"group": STR, "kind": STR, "name": STR, "namespace": STR, "port": PORT,
                   "weight": INT, "filters": arr(ANY)}, ("name",))
HEADER_MODIFIER = obj({"set": arr(obj({"name": STR, "value": STR}, ("name", "value"))),
                       "add": arr(obj({"name": STR, "value": STR}, ("name", "value"))),
                       "remove": arr(STR)})
HTTPROUTE_FILTER = obj({
    "type": {"enum": ["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror",
                      "RequestRedirect", "URLRewrite", "ExtensionRef", "CORS"]},
    "requestHeaderModifier": HEADER_MODIFIER, "responseHeaderModifier": HEADER_MODIFIER,
    "requestMirror": ANY, "requestRedirect": ANY, "urlRewrite": ANY, "cors": ANY,
    "extensionRef": LOCAL_REF}, ("type",))
HTTPROUTE_MATCH = obj({
    "path": obj({"type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]}, "value": STR}),
    "headers": arr(obj({"type": {"enum": ["Exact", "RegularExpression"]}, "name": STR, "value": STR},
                       ("name", "value"))),
    "queryParams": arr(obj({"type": {"enum": ["Exact", "RegularExpression"]}, "name": STR, "value": STR},
                           ("name", "value"))),
    "method": {"enum": ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]}})
JSON_PATCH_OP = obj({"op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
                     "path": STR, "jsonPath": STR, "from": STR, "value": ANY}, ("op",))


def _kind(api_version: str, kind: str, spec: dict, required_spec: bool = True) -> dict:
    return obj({"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": OBJECT_META,
                "spec": spec}, ("apiVersion", "kind", "metadata") + (("spec",) if required_spec else ()))


GATEWAY_API = "gateway.networking.k8s.io/v1"
EG_API = "gateway.envoyproxy.io/v1alpha1"
HAND_WRITTEN = {
    (GATEWAY_API, "GatewayClass"): _kind(GATEWAY_API, "GatewayClass", obj({
        "controllerName": STR, "description": STR, "parametersRef": ANY}, ("controllerName",))),
    (GATEWAY_API, "Gateway"): _kind(GATEWAY_API, "Gateway", obj({
        "gatewayClassName": STR, "addresses": arr(ANY),
        "infrastructure": obj({"labels": STR_MAP, "annotations": STR_MAP,
                               "parametersRef": obj({"group": STR, "kind": STR, "name": STR},
                                                    ("group", "kind", "name"))}),
        "listeners": arr(obj({"name": STR, "hostname": STR, "port": PORT,
                              "protocol": {"enum": ["HTTP", "HTTPS", "TLS", "TCP", "UDP"]},
                              "tls": ANY,
                              "allowedRoutes": obj({"namespaces": obj({"from": {"enum": ["All", "Same", "Selector"]},
                                                                       "selector": ANY}),
                                                    "kinds": arr(ANY)})},
                             ("name", "port", "protocol")))}, ("gatewayClassName", "listeners"))),
    (GATEWAY_API, "HTTPRoute"): _kind(GATEWAY_API, "HTTPRoute", obj({
        "parentRefs": arr(PARENT_REF), "hostnames": arr(STR),
        "rules": arr(obj({"name": STR, "matches": arr(HTTPROUTE_MATCH), "filters": arr(HTTPROUTE_FILTER),
                          "backendRefs": arr(BACKEND_REF),
                          "timeouts": obj({"request": DURATION, "backendRequest": DURATION}),
                          "retry": ANY, "sessionPersistence": ANY}))})),
    (GATEWAY_API, "BackendTLSPolicy"): _kind(GATEWAY_API, "BackendTLSPolicy", obj({
        "targetRefs": arr(obj({"group": STR, "kind": STR, "name": STR, "sectionName": STR},
                              ("group", "kind", "name"))),
        "validation": obj({"caCertificateRefs": arr(LOCAL_REF), "wellKnownCACertificates": {"enum": ["System"]},
                           "hostname": STR, "subjectAltNames": arr(ANY)}, ("hostname",)),
        "options": STR_MAP}, ("targetRefs", "validation"))),
    (EG_API, "Backend"): _kind(EG_API, "Backend", obj({
        "type": {"enum": ["Endpoints", "DynamicResolver"]},
        "endpoints": arr(obj({"fqdn": obj({"hostname": STR, "port": PORT}, ("hostname", "port")),
                              "ip": obj({"address": STR, "port": PORT}, ("address", "port")),
                              "unix": obj({"path": STR}, ("path",)), "zone": STR})),
        "appProtocols": arr(STR), "fallback": BOOL, "tls": ANY})),
    (EG_API, "HTTPRouteFilter"): _kind(EG_API, "HTTPRouteFilter", obj({
        "urlRewrite": ANY, "credentialInjection": ANY,
        "directResponse": obj({"contentType": STR, "statusCode": INT, "header": ANY,
                               "body": obj({"type": {"enum": ["Inline", "ValueRef"]}, "inline": STR,
                                            "valueRef": LOCAL_REF}, ("type",))})})),
    (EG_API, "EnvoyProxy"): _kind(EG_API, "EnvoyProxy", obj({
        "provider": obj({"type": {"enum": ["Kubernetes", "Host"]},
                         "kubernetes": obj({"envoyDeployment": obj({
                             "replicas": INT, "patch": ANY, "strategy": ANY, "pod": ANY, "initContainers": arr(ANY),
                             "container": obj({"env": arr(ENV_VAR), "resources": ANY, "securityContext": ANY,
                                               "image": STR, "volumeMounts": arr(ANY)})}),
                             "envoyService": ANY, "envoyHpa": ANY, "envoyPDB": ANY, "envoyDaemonSet": ANY})},
                        ("type",)),
        "logging": ANY, "telemetry": ANY, "bootstrap": ANY, "concurrency": INT, "shutdown": ANY,
        "extraArgs": arr(STR), "mergeGateways": BOOL, "filterOrder": arr(ANY)})),
    (EG_API, "EnvoyPatchPolicy"): _kind(EG_API, "EnvoyPatchPolicy", obj({
        "type": {"enum": ["JSONPatch"]},
        "targetRef": obj({"group": STR, "kind": STR, "name": STR}, ("group", "kind", "name")),
        "targetRefs": arr(obj({"group": STR, "kind": STR, "name": STR}, ("group", "kind", "name"))),
        "priority": INT,
        "jsonPatches": arr(obj({"type": {"enum": [
            "type.googleapis.com/envoy.config.listener.v3.Listener",
            "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"]},
            "name": STR, "operation": JSON_PATCH_OP}, ("type", "name", "operation")))}, ("type",))),
}


# --------------------------------------------------------------------------- validation

def _format(errors) -> str:
    lines = []
    for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in e.absolute_path) or "<root>"
        lines.append(f"{where}: {e.message}")
    return "\n".join(lines)


def validate(doc: dict) -> str:
    """Validates one manifest; returns which schema source was used, raises ManifestError
    naming every offending field otherwise."""
    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        raise ManifestError(f"not a Kubernetes object (no apiVersion/kind): {str(doc)[:200]}")
    key = (doc["apiVersion"], doc["kind"])
    name = f"{doc['kind']} {doc.get('metadata', {}).get('name', '?')}"
    if key in CORE_KINDS:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path) or "<root>"
            raise ManifestError(f"{name}: {where}: {e.message}") from None
        return "kubernetes-validate"
    if key in HAND_WRITTEN:
        schema, source = HAND_WRITTEN[key], "hand-written"
    elif key in crd_schemas():
        schema, source = crd_schemas()[key], "crd"
    else:
        raise ManifestError(f"{name}: unknown kind {key}: no core schema, no CRD in {CRD_DIR}, "
                            "no hand-written schema")
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    errors = list(validator.iter_errors(doc))
    if errors:
        raise ManifestError(f"{name}:\n{_format(errors)}")
    return source
