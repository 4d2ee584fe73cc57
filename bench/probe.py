"""What each kind of proxy-wasm host call costs in this Envoy (V8), per request.

Starts the same fast upstream as `make bench`, plain Envoy, and one Envoy per probe
variant: `bench/probe-filter` configured to make N host calls of one kind in one
callback. Each variant is loaded with wrk in turn (alternating, several rounds) and its
CPU time per request read from /proc (llm-gateway itself, as `make bench` configures
it, is measured alongside); the report is the median CPU µs per request, the
difference to the probe that makes no calls, and that difference divided by N (µs per
call). Used to decide which host calls llm-gateway should avoid (bench/analysis.md).

    .venv/bin/python bench/probe.py [--rounds 5] [--seconds 4]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (processes, configs, wrk and CPU accounting of make bench)

PROBE_WASM = run.ROOT / "target" / "probe-filter" / "wasm32-wasip1" / "release" / "probe_filter.wasm"

# name -> (probe configuration, calls per request the difference is divided by)
VARIANTS = {
    "none": ("", 1),
    "pause": ("pause", 1),
    "get_header x10": ("headers:get_header:10", 10),
    "get_absent_header x10": ("headers:get_absent_header:10", 10),
    "get_headers (map) x10": ("headers:get_headers:10", 10),
    "get_headers_bytes (map) x10": ("headers:get_headers_bytes:10", 10),
    "get+set map x10": ("headers:set_map:10", 10),
    "set_header x10": ("headers:set_header:10", 10),
    "remove_header x10": ("headers:remove_header:10", 10),
    "set_property x10": ("headers:set_property:10", 10),
    "now x10": ("headers:now:10", 10),
    "counter x10": ("log:counter:10", 10),
    "histogram x10": ("log:histogram:10", 10),
    "clear_route x10": ("headers:clear_route:10", 10),
    "get_body (4 KB) x10": ("pause;body:get_body:10", 10),
    "resp get_body x10": ("resp_body:get_body:10", 10),
}


def probe_config(admin: int, port: int, upstream: int, chunked: int, conf: str) -> dict:
    cfg = run.noop_config(admin, port, upstream, chunked)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = hcm["http_filters"][0]["typed_config"]["config"]
    wasm["name"] = wasm["root_id"] = wasm["vm_config"]["vm_id"] = "probe"
    wasm["vm_config"]["code"]["local"]["filename"] = str(PROBE_WASM)
    wasm["allow_on_headers_stop_iteration"] = True
    wasm["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": conf}
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--compare", default="", help="another llm_gateway.wasm to measure alongside")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    a = ap.parse_args()
    r = subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip1", "--manifest-path",
                        str(HERE / "probe-filter" / "Cargo.toml"), "--target-dir",
                        str(run.ROOT / "target" / "probe-filter")], capture_output=True, text=True)
    if not PROBE_WASM.exists():
        sys.exit(f"the probe filter did not build: {r.stderr[-500:]}")
    variants = {k: v for k, v in VARIANTS.items() if not a.only or k in a.only.split(",") or k == "none"}
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-probe-"))
    body = workdir / "body.json"
    body.write_bytes(run.chat_body(4096, "m", False))
    up_port, up_admin, ch_port = run.free_port(), run.free_port(), run.free_port()
    procs: dict[str, run.Proc] = {}
    ports: dict[str, int] = {}
    samples: dict[str, list[float]] = {}
    try:
        procs["upstream"] = run.start_envoy("upstream", run.upstream_envoy_config(up_port, up_admin), up_port,
                                            up_admin, workdir, run.LOADGEN_CPU)
        admin, ports["plain Envoy"] = run.free_port(), run.free_port()
        procs["plain Envoy"] = run.start_envoy("plain", run.plain_config(admin, ports["plain Envoy"], up_port, ch_port),
                                               ports["plain Envoy"], admin, workdir, run.PROXY_CPU)
        for i, (name, (conf, _)) in enumerate(variants.items()):
            admin, ports[name] = run.free_port(), run.free_port()
            procs[name] = run.start_envoy(f"probe{i}", probe_config(admin, ports[name], up_port, ch_port, conf),
                                          ports[name], admin, workdir, run.PROXY_CPU)
        admin, ports["llm-gateway"] = run.free_port(), run.free_port()
        procs["llm-gateway"] = run.start_envoy("gateway", run.gateway_config(admin, ports["llm-gateway"], up_port,
                                                                           ch_port),
                                               ports["llm-gateway"], admin, workdir, run.PROXY_CPU)
        names = ["plain Envoy", *variants, "llm-gateway"]
        if a.compare:
            cfg = run.gateway_config(admin := run.free_port(), port := run.free_port(), up_port, ch_port)
            run.harness._wasm_filter(cfg)["vm_config"]["code"]["local"]["filename"] = a.compare
            ports["llm-gateway (compare)"] = port
            procs["llm-gateway (compare)"] = run.start_envoy("compare", cfg, port, admin, workdir, run.PROXY_CPU)
            names.append("llm-gateway (compare)")
        # What the official OpenAI SDK sends besides the basics.
        headers = {"Authorization": "Bearer sk-client", "User-Agent": "OpenAI/Python 3.54.0",
                   "Accept": "application/json", "X-Stainless-Lang": "python",
                   "X-Stainless-Package-Version": "3.54.0", "X-Stainless-OS": "Linux",
                   "X-Stainless-Arch": "x64", "X-Stainless-Runtime": "CPython",
                   "X-Stainless-Runtime-Version": "3.12.3", "X-Stainless-Async": "false",
                   "X-Stainless-Retry-Count": "0", "X-Stainless-Read-Timeout": "600"}
        for n in names:
            run.wrk(ports[n], body, headers, a.connections, 1)
        for rnd in range(a.rounds):
            for n in names:
                m = run.measure(procs[n], ports[n], body, headers, a.connections, a.seconds)
                if m["errors"]:
                    raise RuntimeError(f"{n}: {m['errors']} errors")
                samples.setdefault(n, []).append(m["cpu_ms_per_req"] * 1000)
                run.log(f"round {rnd + 1}/{a.rounds} {n:>24}: {m['cpu_ms_per_req'] * 1000:6.1f} µs/req "
                        f"{m['rps']:7.0f} req/s")
    finally:
        for p in procs.values():
            p.stop()
    base = statistics.median(samples["none"])
    rows = ["| variant | CPU µs/request (median) | spread | vs no calls | per call |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for n in names:
        xs = samples[n]
        m = statistics.median(xs)
        per = variants.get(n, (None, 0))[1]
        diff = m - base
        rows.append(f"| {n} | {m:.1f} | {min(xs):.1f}–{max(xs):.1f} | "
                    f"{'' if n == 'plain Envoy' else f'{diff:+.1f}'} | "
                    f"{f'{diff / per:+.2f}' if per and n != 'none' else ''} |")
    print("\n".join(rows))
    (workdir / "probe.json").write_text(json.dumps(samples))


if __name__ == "__main__":
    main()
