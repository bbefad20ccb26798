"""The config is validated at start-up: unknown keys and bad values name the setting."""
import copy

import pytest
import yaml

from scoder.config import ConfigError, deep_merge, validate

with open("config/config.yaml") as f:
    CONFIG = yaml.safe_load(f)


def test_shipped_config_is_valid_and_has_the_paper_runs():
    runs = validate(CONFIG)
    assert {"tiny", "l", "q7", "q14"} <= set(runs)
    assert runs["q14"]["models"]["synthesizer"] == "Qwen/Qwen2.5-Coder-14B-Instruct"
    assert runs["q7"]["models"]["synthesizer"] == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert runs["l"]["models"]["synthesizer"] == "meta-llama/Llama-3.1-8B-Instruct"
    # paper settings survive inheritance
    assert runs["q7"]["reference"]["lora"] == {"r": 128, "alpha": 512, "dropout": 0.05,
                                               "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    assert [it["select"] for it in runs["l"]["bootstrap"]["iterations"]] == [20000, 40000]
    assert runs["q14"]["sampling"]["n"] == 3 and runs["q14"]["synthesizer"]["checkpoints"] == 5
    assert CONFIG["default_run"] == "tiny"


def test_unknown_key_is_named():
    bad = copy.deepcopy(CONFIG)
    bad["runs"]["tiny"]["sampling"]["temprature"] = 0.3
    with pytest.raises(ConfigError, match=r"runs\.tiny\.sampling\.temprature: unknown setting"):
        validate(bad)


def test_bad_value_is_named():
    bad = copy.deepcopy(CONFIG)
    bad["runs"]["q14"]["pool"]["dedup"]["threshold"] = 1.5
    with pytest.raises(ConfigError, match=r"runs\.q14\.pool\.dedup\.threshold"):
        validate(bad)


def test_unknown_parent_run_is_named():
    bad = copy.deepcopy(CONFIG)
    bad["runs"]["ablation"] = {"extends": "q15"}
    with pytest.raises(ConfigError, match="q15"):
        validate(bad)


def test_deep_merge_overrides_leaves_only():
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_switching_backend_drops_the_other_backends_options():
    runs = validate(CONFIG)
    assert runs["tiny"]["backends"]["quality"] == {"backend": "transformers", "batch_size": 16, "dtype": "fast"}


@pytest.mark.parametrize("source, message", [
    ({"type": "tree"}, r"runs\.tiny\.pool\.sources\[1\]\.path: missing, it is required here \(a tree source\)"),
    ({"type": "stack"}, r"runs\.tiny\.pool\.sources\[1\]\.path: missing"),
    ({"type": "stack", "path": ""}, r"runs\.tiny\.pool\.sources\[1\]\.path: '' should be non-empty"),
    ({"type": "svn", "path": "x"}, r"runs\.tiny\.pool\.sources\[1\]\.type: 'svn' is not one of"),
])
def test_malformed_pool_source_names_its_setting(source, message):
    bad = copy.deepcopy(CONFIG)
    bad["runs"]["tiny"]["pool"]["sources"] = [{"type": "stdlib"}, source]
    with pytest.raises(ConfigError, match=message):
        validate(bad)
    # a source that points nowhere is no config error: a dry run of a paper run needs no data
    bad["runs"]["tiny"]["pool"]["sources"] = [{"type": "tree", "path": "/nowhere", "name": "mine"}]
    validate(bad)
