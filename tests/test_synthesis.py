"""synthesize: records, failure reasons, and resuming after an interruption."""
import pytest

from scoder.io import read_json, read_jsonl
from scoder.llm import make_generator
from scoder.synthesis import sidecar_paths, synthesize

SNIPPETS = [{"id": f"s{i}", "name": f"f{i}", "code": f"def f{i}(x):\n    return x + {i}",
             "docstring": "", "source": "test", "path": "t.py"} for i in range(5)]
KW = dict(n=2, temperature=1.0, top_p=1.0, max_new_tokens=6, seed=3, model_name="micro",
          checkpoint=1, batch_size=2)


class Interrupted(RuntimeError):
    pass


class Recording:
    """Passes calls to a real generator, records the prompts it was asked, and
    can raise after a number of generate calls (a crash mid-run)."""

    def __init__(self, inner, fail_after=None):
        self.inner, self.fail_after, self.prompts = inner, fail_after, []
        self.model = inner.model

    @property
    def usage(self):
        return self.inner.usage

    def generate(self, conversations, **kw):
        if self.fail_after is not None and len(self.prompts) >= self.fail_after:
            raise Interrupted()
        self.prompts.append([c[-1]["content"] for c in conversations])
        return self.inner.generate(conversations, **kw)


@pytest.fixture(scope="module")
def gen(micro_model):
    return make_generator({"backend": "transformers", "model": micro_model, "device": "cpu",
                           "batch_size": 4})


def _outputs(path):
    paths = sidecar_paths(path)
    return read_jsonl(paths["samples"]), read_jsonl(paths["failures"])


def test_every_sample_is_recorded_once_with_its_reason(gen, tmp_path):
    out = tmp_path / "samples.jsonl"
    stats = synthesize(SNIPPETS, gen, str(out), **KW)
    samples, failures = _outputs(out)
    # A random micro model never writes the two sections: all fail, by reason.
    assert stats["requested"] == 10 and stats["parsed"] + sum(stats["failed"].values()) == 10
    assert len(samples) + len(failures) == 10
    assert {f["id"] for f in failures} | {s["id"] for s in samples} == {
        f"s{i}#c1s{j}" for i in range(5) for j in range(2)}
    rec = failures[0]
    assert rec["snippet_id"] == "s0" and rec["snippet"] == SNIPPETS[0]["code"]
    assert rec["model"] == "micro" and rec["checkpoint"] == 1 and rec["reason"]
    assert stats["this_attempt"]["usage"]["requests"] == 5 and stats["usage"]["prompt_tokens"] > 0
    assert read_json(sidecar_paths(out)["fingerprint"])["fingerprint"] == stats["fingerprint"]


def test_interrupted_run_resumes_with_only_missing_snippets(gen, tmp_path):
    whole = tmp_path / "whole.jsonl"
    unbroken = synthesize(SNIPPETS, gen, str(whole), **KW)

    out = tmp_path / "resumed.jsonl"
    first = Recording(gen, fail_after=2)
    with pytest.raises(Interrupted):
        synthesize(SNIPPETS, first, str(out), **KW)
    assert len(first.prompts) == 2  # batches s0,s1 and s2,s3 finished
    out.unlink()  # as Snakemake does with an incomplete output

    second = Recording(gen)
    stats = synthesize(SNIPPETS, second, str(out), **KW)
    assert len(second.prompts) == 1 and len(second.prompts[0]) == 1
    assert "return x + 4" in second.prompts[0][0]  # only s4 was asked
    assert stats["this_attempt"]["resumed_snippets"] == 4 and stats["this_attempt"]["requested"] == 2
    # Seeds are per batch, so the resumed run wrote what an unbroken one did,
    # and its stats (counts, tokens) are the whole output's.
    assert _outputs(out) == _outputs(whole)
    assert {**stats, "this_attempt": None} == {**unbroken, "this_attempt": None}

    third = Recording(gen)
    assert synthesize(SNIPPETS, third, str(out), **KW)["this_attempt"]["requested"] == 0
    assert third.prompts == []


def test_changed_arguments_start_over_and_dropped_snippets_leave(gen, tmp_path):
    out = tmp_path / "samples.jsonl"
    synthesize(SNIPPETS, gen, str(out), **KW)
    rerun = Recording(gen)
    synthesize(SNIPPETS, rerun, str(out), **{**KW, "temperature": 0.5})
    assert sum(len(p) for p in rerun.prompts) == 5  # new fingerprint: all asked again

    synthesize(SNIPPETS[:4], gen, str(out), **{**KW, "temperature": 0.5})
    samples, failures = _outputs(out)
    assert {r["snippet_id"] for r in samples + failures} == {"s0", "s1", "s2", "s3"}


def test_duplicate_snippet_ids_are_rejected(gen, tmp_path):
    with pytest.raises(ValueError, match="unique"):
        synthesize(SNIPPETS + SNIPPETS[:1], gen, str(tmp_path / "o.jsonl"), **KW)
