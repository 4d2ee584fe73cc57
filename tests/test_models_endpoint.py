"""Model discovery: GET /v1/models lists the configured models (with the provider that owns
each) and /v1/models/{id} retrieves one, through the official OpenAI SDK. The configuration
is the one of tests/fixtures_bedrock_google.py."""
import openai
import pytest

from fixtures_bedrock_google import FLASH, HAIKU, LISTED, oai
from fixtures_bedrock_google import gw, mocks  # noqa: F401 (fixtures, found by name)


def test_models_list_and_retrieve(gw):
    client = oai(gw)
    models = client.models.list()
    assert sorted(m.id for m in models.data) == LISTED
    owners = {m.id: m.owned_by for m in models.data}
    assert owners["claude-bedrock"] == "bedrock" and owners[FLASH] == "gemini" and owners["vertex-flash"] == "vertex"
    assert all(m.object == "model" for m in models.data)
    m = client.models.retrieve("claude-bedrock")
    assert (m.id, m.owned_by, m.object) == ("claude-bedrock", "bedrock", "model")
    assert client.models.retrieve(HAIKU).id == HAIKU
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("no-such-model")
    assert exc.value.status_code == 404
    assert "no-such-model" in exc.value.message
