"""What reaches a provider obeys its public API: only the provider's own credentials (never
the client's), checked by the mocks — and the mocks' checks bite: requests that skip the
gateway and break a provider's rules are refused (tests/fixtures_openai_anthropic_azure.py)."""
import json

from fixtures_openai_anthropic_azure import (ANTHROPIC_KEY, AZ_CHAT, AZURE_KEY, AZURE_VERSION, CLAUDE, GPT,
                                             WEATHER_OPENAI, user)
from fixtures_openai_anthropic_azure import an, az, gw, mocks, oa  # noqa: F401 (fixtures, found by name)


def test_client_credentials_never_reach_a_provider(gw, an, oa, az):
    """Every request the mocks saw carried only the provider's own key (the mocks check it);
    here every client credential header is sent at once."""
    h = {"authorization": "Bearer sk-client", "x-api-key": "sk-client-2", "api-key": "sk-client-3"}
    for model in (CLAUDE, GPT, AZ_CHAT):
        status, _, body = gw.chat(model, headers=h)
        assert status == 200, body
    status, _, body = gw.post("/v1/messages", {"model": GPT, "max_tokens": 5, "messages": user("x")}, headers=h)
    assert status == 200, body
    assert (len(an.requests), len(oa.requests), len(az.requests)) == (1, 2, 1)


def test_the_mocks_reject_what_the_real_apis_reject(mocks):
    """The mocks are only worth something if their checks bite: requests that skip the
    gateway and break the providers' rules get a 4xx naming the rule."""
    from harness import request
    an, az = mocks["anthropic"], mocks["azure"]
    good = {"model": CLAUDE, "max_tokens": 5, "messages": user("x")}
    h = {"content-type": "application/json", "x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
    cases = [
        (h | {"authorization": "Bearer x"}, good, 401, "authorization"),
        ({k: v for k, v in h.items() if k != "x-api-key"}, good, 401, "x-api-key is missing"),
        ({k: v for k, v in h.items() if k != "anthropic-version"}, good, 400, "anthropic-version"),
        (h, {**good, "max_tokens": None}, 400, "max_tokens"),
        (h, {**good, "messages": user("a") + user("b")}, 400, "alternate"),
        (h, {**good, "messages": [{"role": "system", "content": "s"}] + user("a")}, 400, "first message"),
        (h, {**good, "stream_options": {"include_usage": True}}, 400, "Extra inputs"),
        (h, {**good, "tools": [WEATHER_OPENAI]}, 400, "tools.0"),
    ]
    try:
        for headers, body, status, fragment in cases:
            body = {k: v for k, v in body.items() if v is not None}
            st, _, out = request("POST", an.port, "/v1/messages", json.dumps(body).encode(), headers)
            err = json.loads(out)
            assert (st, err["type"]) == (status, "error"), (fragment, out)
            assert fragment in err["error"]["message"], (fragment, out)
        ah = {"content-type": "application/json", "api-key": AZURE_KEY}
        chat = json.dumps({"model": AZ_CHAT, "messages": user("x")}).encode()
        path = f"/openai/deployments/d/chat/completions?api-version={AZURE_VERSION}"
        for headers, p, status, fragment in [
            (ah | {"authorization": "Bearer x"}, path, 401, "authorization"),
            (ah, path.replace(AZURE_VERSION, "2020-01-01"), 404, "api-version"),
            (ah, "/v1/chat/completions", 404, "deployments"),
        ]:
            st, _, out = request("POST", az.port, p, chat, headers)
            assert st == status and fragment in json.loads(out)["error"]["message"], (fragment, out)
    finally:
        an.reset()
        az.reset()
