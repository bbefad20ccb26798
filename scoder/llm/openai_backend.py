"""OpenAI-compatible backend: the teacher (GPT-4o) or any server speaking
``/v1/chat/completions`` (vLLM serve, llama.cpp server, a proxy).

* bounded concurrency: a thread pool of ``max_concurrency`` requests;
* retries: the ``openai`` client retries 408/409/429/5xx, connection errors
  and timeouts ``max_retries`` times with exponential backoff and jitter
  (honouring Retry-After), which is the policy we want, so we use it;
* a persistent cache (``cache_dir``) keyed by the sha256 of model, messages
  and sampling parameters, written as each response arrives, so a rerun —
  after a crash, or of a finished run — never pays for a request twice;
* usage: requests actually sent, cache hits, and the tokens and estimated
  cost of every answer returned; a cached answer counts the tokens it cost
  when it was paid, so a stage resumed after a crash reports what its whole
  output cost (each request paid once), and ``requests`` what this process paid for;
* errors a user can act on name the config setting to fix.  The API key is
  read from the environment variable named by ``api_key_env`` and is never
  stored, logged or put in a cache key.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import openai
from tqdm.auto import tqdm

from .base import Conversation, Generator, LLMConfigError, derive_seed, ends_with_prefill
from .cache import ResponseCache, request_key

TOP_LOGPROBS = 20  # the most the OpenAI API returns per position


class OpenAIGenerator(Generator):
    """Chat completions from an OpenAI-compatible HTTP endpoint."""

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1",
                 api_key_env: str | None = "OPENAI_API_KEY", max_concurrency: int = 8,
                 max_retries: int = 6, timeout: float = 600.0, cache_dir: str | None = None,
                 price_per_1k_input: float = 0.0, price_per_1k_output: float = 0.0):
        super().__init__(model)
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.cache = ResponseCache(cache_dir)
        self.prices = (price_per_1k_input, price_per_1k_output)
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()

    def _cost(self) -> float:
        return (self._usage["prompt_tokens"] * self.prices[0]
                + self._usage["completion_tokens"] * self.prices[1]) / 1000

    # -- connection ----------------------------------------------------------
    def _api_key(self) -> str:
        if not self.api_key_env:
            return "EMPTY"  # local servers (vLLM, llama.cpp) want no key
        key = os.environ.get(self.api_key_env)
        if not key:
            raise LLMConfigError(
                f"environment variable {self.api_key_env} is not set: export the API key "
                f"there, or change `api_key_env` (set it to null for a server without keys)")
        return key

    def _connect(self) -> openai.OpenAI:
        """The client, made on the first request not in the cache (so a fully
        cached rerun needs neither the server nor the key), after checking
        that the server is reachable, accepts the key and serves the model."""
        with self._lock:
            if self._client is None:
                client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key(),
                                       max_retries=self.max_retries, timeout=self.timeout)
                try:
                    served = [m.id for m in client.models.list()]
                except openai.NotFoundError:
                    served = None  # endpoint without /models: the first request will tell
                except openai.APIError as e:
                    raise self._explain(e) from e
                if served is not None and self.model not in served:
                    raise LLMConfigError(
                        f"model {self.model!r} is not served at {self.base_url} (it serves "
                        f"{', '.join(served[:20]) or 'nothing'}): fix `model`")
                self._client = client
            return self._client

    def _explain(self, e: Exception) -> Exception:
        """An error naming the setting to fix, for the failures a user can fix."""
        where = f"{self.base_url} (model {self.model!r})"
        if isinstance(e, (openai.APIConnectionError, openai.APITimeoutError)):
            return LLMConfigError(f"cannot reach the server at {where} after {self.max_retries} "
                                  f"retries: check `base_url` and that the server is running ({e})")
        if isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return LLMConfigError(f"the server at {where} refused the API key from "
                                  f"${self.api_key_env}: check the key or `api_key_env` ({e})")
        if isinstance(e, openai.NotFoundError):
            return LLMConfigError(f"not found at {where}: check `model` and `base_url` "
                                  f"(it should end in /v1) ({e})")
        return e

    # -- requests ------------------------------------------------------------
    def _request(self, params: dict) -> dict:
        """One cached chat completion; returns the cached value
        ``{"texts": [...], "logprobs": ...}``."""
        key = request_key(params)
        hit = self.cache.get(key)
        if hit is not None:
            with self._lock:
                self._usage["cached"] += 1
                self._count_tokens(hit.get("usage"))
            return hit
        client = self._connect()
        try:
            response = client.chat.completions.create(**params)
        except openai.APIError as e:
            raise self._explain(e) from e
        value = {"texts": [c.message.content or "" for c in response.choices]}
        if params.get("logprobs"):
            value["logprobs"] = [
                [{"token": t.token, "logprob": t.logprob} for t in c.logprobs.content[0].top_logprobs]
                if c.logprobs and c.logprobs.content else None
                for c in response.choices]
        if response.usage is not None:
            value["usage"] = {"prompt_tokens": response.usage.prompt_tokens or 0,
                              "completion_tokens": response.usage.completion_tokens or 0}
        with self._lock:
            self._usage["requests"] += 1
            self._count_tokens(value.get("usage"))
        self.cache.put(key, value)
        return value

    def _count_tokens(self, usage: dict | None) -> None:
        for name in ("prompt_tokens", "completion_tokens"):
            self._usage[name] += (usage or {}).get(name, 0)

    def _completions(self, messages: Conversation, temperature: float, top_p: float,
                     max_new_tokens: int, n: int, seed: int) -> list[str]:
        params = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens}
        if temperature <= 0:
            # Greedy output does not depend on the seed; leaving it out of the
            # request (and so the cache key) keeps reruns with other seeds free.
            params.update(temperature=0.0, n=1)
            return self._request(params)["texts"] * n
        params.update(temperature=temperature, top_p=top_p, n=n, seed=seed)
        texts = self._request(params)["texts"]
        # Servers that ignore n (llama.cpp) answer once; fetch the rest one by one.
        for j in range(len(texts), n):
            texts += self._request({**params, "n": 1, "seed": derive_seed(seed, j)})["texts"]
        return texts[:n]

    def _map(self, fn, items: list, desc: str) -> list:
        """``fn`` over items on the thread pool, in order; the first error cancels
        what has not started and is raised (finished responses stay cached)."""
        results: list = [None] * len(items)
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            with tqdm(total=len(items), desc=desc, disable=len(items) <= 1) as bar:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for fut in done:
                        if fut.exception() is not None:
                            for p in pending:
                                p.cancel()
                            raise fut.exception()
                        results[futures[fut]] = fut.result()
                        bar.update(1)
        return results

    def _check_no_prefill(self, conversations: list[Conversation]) -> None:
        if any(ends_with_prefill(c) for c in conversations):
            raise LLMConfigError(
                "the OpenAI chat API cannot continue a partial assistant turn (prefill); "
                "use backend transformers or vllm for this stage")

    def generate(self, conversations: list[Conversation], *, temperature: float = 0.0,
                 top_p: float = 1.0, max_new_tokens: int = 512, n: int = 1,
                 seed: int = 0) -> list[list[str]]:
        self._check_no_prefill(conversations)
        return self._map(lambda conv: self._completions(conv, temperature, top_p,
                                                        max_new_tokens, n, seed),
                         conversations, desc=f"{self.model} generate")

    def score_choices(self, conversations: list[Conversation],
                      choices: list[str]) -> list[dict[str, float]]:
        """Via the top log-probs of the first generated token; a choice outside
        the top 20 gets the 20th log-prob (an upper bound on its own)."""
        self._check_no_prefill(conversations)
        def score(conv):
            params = {"model": self.model, "messages": conv, "max_tokens": 1,
                      "temperature": 0.0, "n": 1, "logprobs": True,
                      "top_logprobs": TOP_LOGPROBS}
            top = self._request(params).get("logprobs", [None])[0]
            if not top:
                raise LLMConfigError(
                    f"the server at {self.base_url} returned no logprobs for {self.model!r}; "
                    "score_choices (the quality classifier) needs a server with logprobs "
                    "support, or use backend transformers or vllm for it")
            return _match_choices(top, choices)
        return self._map(score, conversations, desc=f"{self.model} score")


def _match_choices(top: list[dict], choices: list[str]) -> dict[str, float]:
    """Log-prob of each choice from (token, logprob) pairs: the best token that
    starts the choice (tokens may carry a leading space)."""
    floor = min(t["logprob"] for t in top)
    out = {}
    for choice in choices:
        matching = [t["logprob"] for t in top
                    if t["token"].strip() and choice.startswith(t["token"].strip())]
        out[choice] = max(matching, default=floor)
    return out
