"""Instructions per request of whole Envoy processes, counted by callgrind: a measure of
what the filter costs that does not depend on the machine's load (the CPU-time figures
of `make bench` move by ±15 % on a shared 2-core machine; these move by < 0.2 %).

For each variant it starts the Envoy binary under `valgrind --tool=callgrind` with
instrumentation off, turns it on, sends warm-up requests, zeroes the counters, sends N
requests one at a time (a 4 KB chat request unless --body-kb says otherwise, SDK-like headers) and divides the collected
instruction count by N. Variants: plain Envoy, Envoy + the no-op Wasm filter, Envoy +
llm-gateway (as `make bench` configures them), the native module (libllm_gateway.so, `make
native`) with the same configuration, optionally another llm_gateway.wasm
(`--compare`), and the host-call probes of `bench/probe.py` (`--probes`). The upstream is
`make bench`'s direct_response Envoy, run natively.

    .venv/bin/python bench/instructions.py [--requests 200] [--compare OLD.wasm] [--probes]
                                           [--body-kb 4] [--stream] [--attributes '[]']
                                           [--scenario anthropic|anthropic-stream|messages|messages-stream|quota|quota-global]
                                           [--chunked]

`--chunked` counts per streamed chunk instead: a 1 KB streamed request whose 24-event answer
arrives in one piece, and the same request answered by `chunked_upstream.py` one event per
HTTP chunk (24 body callbacks); the difference over the 23 extra chunks is what each chunk
costs, beside plain Envoy's.

`CallgrindEnvoy` (one Envoy under callgrind, measured for one request kind after another)
is also what `bench/perf_check.py` (`make perf-check`) counts with.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import probe  # noqa: E402
import run  # noqa: E402

ENVOY_BIN = Path(run.harness.ENVOY).resolve()
HEADERS = ["content-type: application/json", "authorization: Bearer sk-client",
           "user-agent: OpenAI/Python 3.54.0", "x-stainless-lang: python", "x-stainless-os: Linux",
           "x-stainless-arch: x64", "x-stainless-runtime: CPython"]


def real_envoy() -> str:
    """`.venv/bin/envoy` is a Python launcher; valgrind must run the binary it starts."""
    text = ENVOY_BIN.read_text(errors="replace")[:200] if ENVOY_BIN.stat().st_size < 10000 else ""
    if text.startswith("#!"):
        found = list(ENVOY_BIN.parent.parent.glob("lib/python*/site-packages/envoy/_bin/envoy"))
        if found:
            return str(found[0])
    return str(ENVOY_BIN)


def post(port: int, body: Path, n: int, path: str = "/v1/chat/completions", extra: dict | None = None):
    headers = {**dict(h.split(": ", 1) for h in HEADERS), **(extra or {})}
    data = body.read_bytes()
    for _ in range(n):
        status, _, answer = run.harness.request("POST", port, path, data, headers)
        if status != 200:
            raise RuntimeError(f"status {status}: {answer[:300]!r}")


class CallgrindEnvoy:
    """One Envoy (`cfg`, its ports replaced by free ones) under callgrind with instrumentation
    off until the first `measure`, which may be called several times: each sends its own
    warm-up requests, zeroes the counters, sends `n` requests and reads that dump alone. `env`:
    the environment Envoy runs in (default: this process's)."""

    def __init__(self, name: str, cfg: dict, workdir: Path, env: dict | None = None):
        self.name, self.workdir = name, workdir
        self.admin, self.port = run.free_port(), run.free_port()
        cfg["admin"]["address"]["socket_address"]["port_value"] = self.admin
        cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = self.port
        path = workdir / f"{name}.json"
        path.write_text(run.json.dumps(cfg))
        self.out = workdir / f"{name}.callgrind"
        self.log = workdir / f"{name}.log"
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--smc-check=all-non-file",
                                      "--instr-atstart=no", f"--callgrind-out-file={self.out}", real_envoy(), "-c",
                                      str(path), "--concurrency", "1", "--disable-hot-restart", "-l", "warning"],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)
        try:
            if not run.wait_http(self.admin, "/ready", 600, self.proc):
                raise RuntimeError(f"{name} did not start: {self.log.read_text(errors='replace')[-500:]}")
        except BaseException:
            self.stop()
            raise
        self._instrumented = False

    def _ctl(self, *args: str):
        r = subprocess.run(["callgrind_control", *args, str(self.proc.pid)], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: callgrind_control {' '.join(args)} failed: "
                               f"{(r.stderr or r.stdout)[-300:]}")

    def _parts(self) -> set[Path]:
        return set(self.workdir.glob(f"{self.name}.callgrind.*"))

    def measure(self, body: Path, n: int, url_path: str = "/v1/chat/completions", extra: dict | None = None,
                warmup: int = 30, groups: bool = True) -> dict:
        """Instructions per request of the whole process over `n` requests (after `warmup`
        untimed ones); with `groups`, also split by where they ran (callgrind_annotate)."""
        if not self._instrumented:
            self._ctl("-i", "on")
            self._instrumented = True
        post(self.port, body, warmup, url_path, extra)
        before = self._parts()
        self._ctl("-z")
        post(self.port, body, n, url_path, extra)
        self._ctl("-d")
        deadline = time.time() + 60
        while True:
            new = self._parts() - before
            if new and all("\ntotals:" in p.read_text(errors="replace")[-4096:] for p in new):
                break
            if time.time() > deadline:
                raise RuntimeError(f"{self.name}: callgrind wrote no dump: "
                                   f"{self.log.read_text(errors='replace')[-500:]}")
            time.sleep(0.1)
        total, by = 0, collections.Counter()
        for part in new:
            if not groups:
                total += int(re.search(r"^totals: (\d+)", part.read_text(errors="replace"), re.M).group(1))
                continue
            ann = subprocess.run(["callgrind_annotate", "--threshold=100", str(part)], capture_output=True,
                                 text=True).stdout
            for line in ann.splitlines():
                m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*)", line)
                if not m:
                    continue
                ir, where = int(m.group(1).replace(",", "")), m.group(2)
                if "PROGRAM TOTALS" in where:
                    total += ir
                    continue
                addr = re.search(r"\?\?\?:0x([0-9a-f]{16}) \[\?\?\?\]", where)
                if addr and int(addr.group(1), 16) > 0x1_0000_0000:
                    by["Wasm code (V8 JIT)"] += ir
                elif addr:
                    by["V8 runtime stubs"] += ir
                elif "envoy" in where:
                    by["Envoy (incl. V8)"] += ir
                else:
                    by["libc and other"] += ir
        return {"per_request": total / n, "groups": {k: v / n for k, v in by.items()}}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def count(name: str, cfg: dict, body: Path, workdir: Path, n: int, url_path: str = "/v1/chat/completions",
          extra: dict | None = None) -> dict:
    """One Envoy under callgrind for one kind of request (`CallgrindEnvoy`)."""
    with CallgrindEnvoy(name, cfg, workdir) as envoy:
        return envoy.measure(body, n, url_path, extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--compare", default="", help="another llm_gateway.wasm to count alongside")
    ap.add_argument("--probes", action="store_true", help="also count the host-call probes")
    ap.add_argument("--references", action="store_true",
                    help="also count Envoy's own buffer and json_to_metadata filters (no code of ours)")
    ap.add_argument("--body-kb", type=int, default=4, help="request body size in KiB (default 4)")
    ap.add_argument("--stream", action="store_true",
                    help="streaming requests (\"stream\": true) answered with make bench's 24-event SSE stream")
    ap.add_argument("--attributes", default=None, metavar="JSON",
                    help='also count llm-gateway with this access_log_attributes list, e.g. \'[]\'')
    ap.add_argument("--chunked", action="store_true",
                    help="per-chunk cost: a 1 KB stream answered in one piece vs one event per chunk")
    ap.add_argument("--scenario", choices=run.EXTRAS, default=None,
                    help="one of make bench's 4 KB scenarios of other paths (translation, quotas) "
                         "instead of the plain chat request")
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is needed: apt-get install -y valgrind")
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-instr-"))
    body = workdir / "body.json"
    # A stream is answered as in make bench's stream scenarios: model `m-stream` (its provider's
    # path) and `x-bench-stream` (plain Envoy's route) select the upstream's SSE answer.
    body.write_bytes(run.chat_body(a.body_kb * 1024, "m-stream" if a.stream else "m", a.stream))
    path, gw_headers, plain_headers, quota = "/v1/chat/completions", {}, {}, None
    if a.stream:
        gw_headers = plain_headers = {"x-bench-stream": "1"}
    if a.scenario:
        sc = run.extra_scenarios([a.scenario])[0]
        body.write_bytes(sc["body"])
        path, gw_headers = sc["path"], sc["headers"]
        plain_headers = {**gw_headers, **sc.get("plain_headers", {})}
        quota = {"gateway-quota": "local", "gateway-global": "global"}.get(sc.get("gateway", ""))
    up_port, up_admin = run.free_port(), run.free_port()
    upstream = run.start_envoy("upstream", run.upstream_envoy_config(up_port, up_admin), up_port, up_admin,
                               workdir, None)
    # (name, body, extra headers): one request kind, or the two of --chunked.
    kinds = [("", body, {})]
    ch_port, chunked_upstream = up_port, None
    if a.chunked:
        ch_port = run.free_port()
        # 3 ms apart: Envoy under callgrind is ~50× slower, and each event must still arrive
        # (and be handled) on its own.
        chunked_upstream = run.Proc("chunked", [sys.executable, str(HERE / "chunked_upstream.py"), "--port",
                                                str(ch_port), "--events", "20", "--gap-ms", "3"], workdir, cpu=None)
        one, chunked = workdir / "stream-1k.json", workdir / "chunked-1k.json"
        one.write_bytes(run.chat_body(1024, "m-stream", True))
        chunked.write_bytes(run.chat_body(1024, "m-chunked", True))
        kinds = [("one piece", one, {"x-bench-stream": "1"}), ("chunked", chunked, {"x-bench-upstream": "chunked"})]
    helpers, rls = [], None
    if quota == "global":
        helpers, rls = run.start_rate_limit_service(workdir)
    variants = {"plain Envoy": run.plain_config(0, 0, up_port, ch_port)}
    if not run.ensure_noop():
        variants["Envoy + no-op Wasm filter"] = run.noop_config(0, 0, up_port, ch_port)
    if a.references:
        for ref, (label, _, _) in run.REFERENCES.items():
            variants[label] = run.reference_config(ref, 0, 0, up_port, ch_port)
    # Envoy runs ~50× slower under callgrind: give the rate limit service time to answer.
    gw = {"quota": quota, "rls": rls, "rls_timeout_ms": 30000}
    variants["Envoy + llm-gateway"] = run.gateway_config(0, 0, up_port, ch_port, **gw)
    if quota != "global" and run.harness.NATIVE_MODULE.exists():
        os.environ.update(run.NATIVE_ENV)  # inherited by every Envoy started below; harmless to the others
        variants["Envoy + llm-gateway, native module"] = run.native_config(0, 0, up_port, ch_port, **gw)
    if a.compare:
        cfg = run.gateway_config(0, 0, up_port, ch_port, **gw)
        run.harness._wasm_filter(cfg)["vm_config"]["code"]["local"]["filename"] = str(Path(a.compare).resolve())
        variants[f"Envoy + {Path(a.compare).name}"] = cfg
    if a.attributes is not None:
        cfg = run.gateway_config(0, 0, up_port, ch_port, **gw)
        wasm = run.harness._wasm_filter(cfg)
        plugin = run.json.loads(wasm["configuration"]["value"])
        plugin["access_log_attributes"] = run.json.loads(a.attributes)
        wasm["configuration"]["value"] = run.json.dumps(plugin)
        variants[f"Envoy + llm-gateway, access_log_attributes={a.attributes}"] = cfg
    if a.probes:
        subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip1", "--manifest-path",
                        str(HERE / "probe-filter" / "Cargo.toml"), "--target-dir",
                        str(run.ROOT / "target" / "probe-filter")], capture_output=True)
        for name, (conf, _) in probe.VARIANTS.items():
            variants[f"probe: {name}"] = probe.probe_config(0, 0, up_port, up_port, conf)
    results, by_kind = {}, {}
    try:
        for k, (kind, kind_body, kind_headers) in enumerate(kinds):
            for i, (name, cfg) in enumerate(variants.items()):
                gateway = "llm-gateway" in name or name.endswith(".wasm")
                headers = {**(gw_headers if gateway else plain_headers), **kind_headers}
                r = count(f"v{k}-{i}", cfg, kind_body, workdir, a.requests, path, headers)
                by_kind[(kind, name)] = results[name] = r
                run.log(f"{name}{' (' + kind + ')' if kind else ''}: {r['per_request']:,.0f} instructions/request")
    finally:
        upstream.stop()
        if chunked_upstream:
            chunked_upstream.stop()
        for h in helpers:
            h.stop()
    if a.chunked:
        print("| variant | 1 KB stream, one piece | the same, 24 chunks | per extra chunk | added per chunk |")
        print("| --- | ---: | ---: | ---: | ---: |")
        per = {n: (by_kind[("chunked", n)]["per_request"] - by_kind[("one piece", n)]["per_request"]) / 23
               for n in variants}
        for name in variants:
            added = per[name] - per["plain Envoy"]
            print(f"| {name} | {by_kind[('one piece', name)]['per_request']:,.0f} | "
                  f"{by_kind[('chunked', name)]['per_request']:,.0f} | {per[name]:,.0f} | "
                  f"{'' if name == 'plain Envoy' else f'{added:,.0f}'} |")
        return
    base = results["plain Envoy"]["per_request"]
    print("| variant | instructions/request | × plain Envoy | Wasm code | V8 stubs | Envoy | libc |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        g = r["groups"]
        print(f"| {name} | {r['per_request']:,.0f} | {r['per_request'] / base:.2f}× | "
              f"{g.get('Wasm code (V8 JIT)', 0):,.0f} | {g.get('V8 runtime stubs', 0):,.0f} | "
              f"{g.get('Envoy (incl. V8)', 0):,.0f} | {g.get('libc and other', 0):,.0f} |")
    if a.probes:
        none = results["probe: none"]["per_request"]
        print("\n| host call | instructions per call |\n| --- | ---: |")
        for name, (_, n) in probe.VARIANTS.items():
            if name != "none":
                print(f"| {name} | {(results[f'probe: {name}']['per_request'] - none) / n:,.0f} |")


if __name__ == "__main__":
    main()
