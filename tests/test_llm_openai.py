"""The OpenAI-compatible backend against a real server: llama.cpp's
(llama-cpp-python[server]) serving SmolLM2-135M-Instruct on loopback, behind a
small counting proxy that records every request the server is sent (``llama_server``)."""
import json

import openai
import pytest

from llama_server import ALIAS, CHAT, KEY, KEY_ENV, SKIP_REASON, CountingProxy, free_port, server  # noqa: F401 (a fixture)
from scoder.io import read_jsonl
from scoder.llm import LLMConfigError, make_generator
from scoder.synthesis import sidecar_paths, synthesize

pytest.importorskip("llama_cpp.server", reason=SKIP_REASON)


@pytest.fixture
def proxy(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    p = CountingProxy(server.port)
    yield p
    p.shutdown()
    p.server_close()


def _spec(url, tmp_path, **kw):
    return {"backend": "openai", "model": ALIAS, "base_url": url, "api_key_env": KEY_ENV,
            "max_concurrency": 2, "max_retries": 1, "timeout": 120,
            "cache_dir": str(tmp_path / "cache"), **kw}


def _convs(*texts):
    return [[{"role": "user", "content": t}] for t in texts]


def test_generate_counts_usage_and_cost_and_never_pays_twice(proxy, tmp_path, monkeypatch):
    gen = make_generator(_spec(proxy.url, tmp_path, price_per_1k_input=2.0,
                               price_per_1k_output=10.0))
    convs = _convs("Say hi.", "Name a colour.")
    out = gen.generate(convs, max_new_tokens=8)
    assert len(out) == 2 and all(len(g) == 1 and g[0] for g in out)
    usage = gen.usage
    assert usage["requests"] == 2 and usage["cached"] == 0
    assert usage["prompt_tokens"] > 20 and 0 < usage["completion_tokens"] <= 16
    assert usage["est_cost_usd"] == pytest.approx(
        (usage["prompt_tokens"] * 2.0 + usage["completion_tokens"] * 10.0) / 1000)
    assert len(proxy.chats()) == 2

    assert gen.generate(convs, max_new_tokens=8, seed=5) == out  # greedy: seed irrelevant
    assert len(proxy.chats()) == 2 and gen.usage["cached"] == 2
    assert gen.usage["requests"] == 2
    # the cached answers count the tokens they cost when paid for
    assert gen.usage["prompt_tokens"] == 2 * usage["prompt_tokens"]

    # A later run with the same cache needs neither the server nor the key.
    monkeypatch.delenv(KEY_ENV)
    offline = make_generator(_spec(f"http://127.0.0.1:{free_port()}/v1", tmp_path))
    assert offline.generate(convs, max_new_tokens=8) == out
    assert KEY not in json.dumps([p.read_text() for p in (tmp_path / "cache").rglob("*.json")])


def test_n_samples_per_conversation_even_where_the_server_ignores_n(proxy, tmp_path):
    gen = make_generator(_spec(proxy.url, tmp_path))
    out = gen.generate(_convs("Tell me a word."), temperature=0.9, max_new_tokens=6, n=2,
                       seed=11)
    assert len(out) == 1 and len(out[0]) == 2
    sent = len(proxy.chats())
    assert gen.generate(_convs("Tell me a word."), temperature=0.9, max_new_tokens=6, n=2,
                        seed=11) == out
    assert len(proxy.chats()) == sent


def test_server_errors_are_retried(proxy, tmp_path):
    gen = make_generator(_spec(proxy.url, tmp_path))
    gen.generate(_convs("Warm up."), max_new_tokens=2)  # connects (GET /models)
    proxy.fail_next = 1
    out = gen.generate(_convs("Count to three."), max_new_tokens=6)
    assert out[0][0]
    statuses = [e["status"] for e in proxy.chats()[1:]]
    assert statuses == [503, 200] and proxy.chats()[1]["body"] == proxy.chats()[2]["body"]


def test_score_choices_uses_server_logprobs(proxy, tmp_path):
    gen = make_generator(_spec(proxy.url, tmp_path))
    (row,) = gen.score_choices(_convs("Is 4 an even number? Answer Yes or No."), ["Yes", "No"])
    assert set(row) == {"Yes", "No"} and all(lp <= 0 for lp in row.values())


@pytest.mark.parametrize("setting", ["base_url", "model", "api_key_env unset", "wrong key"])
def test_errors_name_the_setting_to_fix(proxy, tmp_path, monkeypatch, setting):
    spec = _spec(proxy.url, tmp_path, max_retries=0)
    if setting == "base_url":
        spec["base_url"] = f"http://127.0.0.1:{free_port()}/v1"
    elif setting == "model":
        spec["model"] = "no-such-model"
    elif setting == "api_key_env unset":
        monkeypatch.delenv(KEY_ENV)
    else:
        monkeypatch.setenv(KEY_ENV, "wrong-key")
    with pytest.raises(LLMConfigError) as err:
        make_generator(spec).generate(_convs("Hi"), max_new_tokens=2)
    message = str(err.value)
    expected = {"base_url": "`base_url`", "model": "`model`",
                "api_key_env unset": KEY_ENV, "wrong key": "`api_key_env`"}[setting]
    assert expected in message
    assert KEY not in message and "wrong-key" not in message


def test_synthesis_survives_a_server_crash_without_resending(server, proxy, tmp_path):
    snippets = [{"id": f"s{i}", "code": f"def f{i}(x):\n    \"\"\"Add {i}.\"\"\"\n    return x + {i}"}
                for i in range(6)]
    kw = dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=12, seed=0, model_name=ALIAS,
              batch_size=2)
    out = tmp_path / "dp.jsonl"

    proxy.after_answer = lambda answered: server.stop(crash=True) if answered == 3 else None
    with pytest.raises((openai.APIError, LLMConfigError)):
        synthesize(snippets, make_generator(_spec(proxy.url, tmp_path)), str(out), **kw)
    first_run = {e["body"] for e in proxy.chats(200)}
    assert 3 <= len(first_run) < 6

    server.start()
    proxy.after_answer = None
    already = len(proxy.log)
    stats = synthesize(snippets, make_generator(_spec(proxy.url, tmp_path)), str(out), **kw)
    second_run = [e["body"] for e in proxy.log[already:] if e["path"] == CHAT]
    assert first_run.isdisjoint(second_run)
    # Finished batches resume from the ledger, answers of the broken batch
    # from the cache: only what was never answered is asked.
    assert len(second_run) == 6 - len(first_run) and stats["this_attempt"]["resumed_snippets"] >= 2
    # the tokens of all six answers, those paid for before the crash too
    assert stats["usage"]["prompt_tokens"] == sum(
        json.loads(p.read_text())["usage"]["prompt_tokens"] for p in (tmp_path / "cache").rglob("*.json"))
    paths = sidecar_paths(out)
    answered = read_jsonl(paths["samples"]) + read_jsonl(paths["failures"])
    assert sorted(r["snippet_id"] for r in answered) == [f"s{i}" for i in range(6)]


def test_prefill_is_refused_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    gen = make_generator(_spec(f"http://127.0.0.1:{free_port()}/v1", tmp_path))
    conv = _convs("Rate it.")[0] + [{"role": "assistant", "content": "score: "}]
    with pytest.raises(LLMConfigError, match="prefill"):
        gen.score_choices([conv], ["1", "2"])
