import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Fixtures and helpers several test modules share: their assertions are rewritten like the
# test modules' own (pytest's detailed failure messages).
pytest.register_assert_rewrite("fixtures_two_openai_providers", "fixtures_openai_anthropic_azure",
                               "fixtures_bedrock_google")

from harness import ENVOY, NATIVE, NATIVE_MODULE, WASM, MockProvider  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "wasm_only(reason): needs what the native module does not have yet; skipped "
                   "when the tests run against it (LLMGW_FILTER=native)")


def pytest_sessionstart(session):
    missing = [str(p) for p in (ENVOY, WASM, NATIVE_MODULE) if not p.exists()]
    if missing:
        raise pytest.UsageError(f"missing {missing}: run the tests with `make test`")


def pytest_collection_modifyitems(config, items):
    if not NATIVE:
        return
    for item in items:
        marker = item.get_closest_marker("wasm_only")
        if marker:
            item.add_marker(pytest.mark.skip(reason=f"native module: {marker.args[0]}"))


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
