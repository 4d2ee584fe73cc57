import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ENVOY, WASM, MockProvider  # noqa: E402


def pytest_sessionstart(session):
    missing = [str(p) for p in (ENVOY, WASM) if not p.exists()]
    if missing:
        raise pytest.UsageError(f"missing {missing}: run the tests with `make test`")


@pytest.fixture
def mock():
    m = MockProvider("mock").start()
    yield m
    m.stop()


@pytest.fixture
def mock2():
    m = MockProvider("mock2").start()
    yield m
    m.stop()
