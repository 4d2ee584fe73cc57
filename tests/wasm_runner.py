"""Cargo's runner for wasm32-wasip1 test binaries: runs one in Wasmtime with WASI.

`make unit-wasm` runs the unit and golden tests compiled for the target the filter ships as
(wasm32-wasip1 with `simd128`), so that the Wasm-only code paths — the SIMD string scan of
src/json_scan.rs above all — and 32-bit `usize` arithmetic are held to the same tests and
property tests as the native build. Usage (set by the Makefile):

    CARGO_TARGET_WASM32_WASIP1_RUNNER=".venv/bin/python tests/wasm_runner.py" \
        cargo test --target wasm32-wasip1 --tests
"""
from __future__ import annotations

import os
import sys

from wasmtime import Config, Engine, ExitTrap, Linker, Module, Store, WasiConfig


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: wasm_runner.py FILE.wasm [ARGS...]", file=sys.stderr)
        return 2
    path = sys.argv[1]
    config = Config()
    config.wasm_simd = True
    engine = Engine(config)
    linker = Linker(engine)
    linker.define_wasi()
    module = Module.from_file(engine, path)
    # The filter's proxy-wasm host imports (`proxy_*`) are linked in but never called by
    # the host-free logic the unit tests cover: calling one traps, failing that test run.
    linker.define_unknown_imports_as_traps(module)
    store = Store(engine)
    wasi = WasiConfig()
    wasi.argv = [os.path.basename(path), *sys.argv[2:]]
    wasi.inherit_env()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    # The crate's directory (cargo runs tests in it), under its own path too: the golden
    # tests read files by `CARGO_MANIFEST_DIR`, proptest its regression files relatively.
    wasi.preopen_dir(os.getcwd(), ".")
    wasi.preopen_dir(os.getcwd(), os.getcwd())
    store.set_wasi(wasi)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    try:
        start(store)
    except ExitTrap as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
