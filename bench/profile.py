"""Profile one Envoy variant under load: `perf record -e cpu-clock` on the Envoy process
while wrk drives it, then the split of CPU samples by shared object (Envoy's stripped
binary, the kernel, V8's JIT code = the Wasm filter, libc, the native module).

    .venv/bin/python bench/profile.py --variant gateway|native|envoy --size 4KB [--stream] [--seconds 8]
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=["envoy", "gateway", "native"], default="gateway")
    ap.add_argument("--size", default="4KB")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--chunked", action="store_true")
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--sort", default="dso")
    ap.add_argument("--percent-limit", default="1")
    ap.add_argument("--wasm", help="another build of the filter (experiments)")
    ap.add_argument("--repeat", type=int, default=1, help="measure N times, no perf (CPU/request only)")
    a = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-profile-"))
    up, up_admin, ch, port, admin = (run.free_port() for _ in range(5))
    procs = []
    try:
        procs.append(run.start_envoy("upstream", run.upstream_envoy_config(up, up_admin), up, up_admin, workdir,
                                     run.LOADGEN_CPU))
        procs.append(run.Proc("chunked", ["python3", str(run.HERE / "chunked_upstream.py"), "--port", str(ch)],
                              workdir, cpu=run.LOADGEN_CPU))
        if a.wasm:
            run.harness.WASM = Path(a.wasm).resolve()
        make = {"gateway": run.gateway_config, "native": run.native_config, "envoy": run.plain_config}[a.variant]
        env = run.NATIVE_ENV if a.variant == "native" else None
        target = run.start_envoy(a.variant, make(admin, port, up, ch), port, admin, workdir, run.PROXY_CPU, env)
        procs.append(target)
        model = "m-chunked" if a.chunked else ("m-stream" if a.stream else "m")
        headers = {"x-bench-upstream": "chunked"} if a.chunked else ({"x-bench-stream": "1"} if a.stream else {})
        body = workdir / "body.json"
        body.write_bytes(run.chat_body(run.SIZES[a.size], model, a.stream or a.chunked))
        run.wrk(port, body, headers, a.connections, 2)  # warm-up
        if a.repeat > 1:
            xs = [run.measure(target, port, body, headers, a.connections, a.seconds)["cpu_ms_per_req"]
                  for _ in range(a.repeat)]
            print(f"{a.variant} {a.size}: CPU ms/req {sorted(xs)} median {sorted(xs)[len(xs) // 2]:.4f}")
            return
        data = workdir / "perf.data"
        perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "4999", "-o", str(data),
                                 "-p", str(target.pid), "--", "sleep", str(a.seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        res = run.measure(target, port, body, headers, a.connections, a.seconds - 1)
        perf.wait()
        print(f"{a.variant} {a.size} stream={a.stream}: {res['rps']:.0f} req/s, "
              f"{res['cpu_ms_per_req']:.4f} CPU ms/req, CPU use {res['cpu_util'] * 100:.0f}%")
        rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", a.sort, "--percent-limit", a.percent_limit],
                             capture_output=True, text=True)
        print("\n".join(l for l in rep.stdout.splitlines() if l and not l.startswith("#")))
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    main()
