"""Categorization: obvious snippets land in their category with the shipped MiniLM, and the
INSTRUCTOR embedder equals a hand computation on a random-weight micro T5 encoder."""
import json
import re

import numpy as np
import pytest
import torch

from scoder.pool.categorize import CATEGORY_DESCRIPTIONS, categorize
from scoder.pool.embed import InstructorEmbedder, load_embedder

CATEGORIES = list(CATEGORY_DESCRIPTIONS)
SQL = '''def get_user(conn, user_id):
    """Fetch a user row from the users table with a SQL SELECT query."""
    cur = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,))
    return cur.fetchone()
'''
SORT = '''def bubble_sort(items):
    """Sort a list in ascending order with bubble sort."""
    a = list(items)
    for i in range(len(a)):
        for j in range(len(a) - 1 - i):
            if a[j] > a[j + 1]:
                a[j], a[j + 1] = a[j + 1], a[j]
    return a
'''


def test_sql_and_sorting_categories():
    records = [{"id": "sql", "code": SQL}, {"id": "sort", "code": SORT}]
    out = categorize(records, CATEGORIES, embedder="minilm", progress=False)
    assert [r["category"] for r in out] == ["Database and SQL Problems", "Algorithmic and Data Structure Problems"]
    assert all(0 < r["category_similarity"] <= 1 for r in out)
    assert [r["id"] for r in out] == ["sql", "sort"] and "category" not in records[0]


def test_margin_over_the_runner_up_and_bfloat16():
    records = [{"id": "sql", "code": SQL}, {"id": "sort", "code": SORT}]
    emb = load_embedder("minilm", device="cpu")
    out = categorize(records, CATEGORIES, embedder="minilm", progress=False, model=emb)
    sims = emb.encode([r["code"] for r in records]) @ emb.encode(
        [f"{c}: {CATEGORY_DESCRIPTIONS[c]}" for c in CATEGORIES]).T
    for r, row in zip(out, sims):
        first, second = np.argsort(-row)[:2]
        assert r["category_runner_up"] == CATEGORIES[second] != r["category"]
        assert r["category_margin"] == pytest.approx(row[first] - row[second], abs=1e-5) and r["category_margin"] > 0
    # the fast setting of the tiny run: bfloat16, 128 tokens; same categories, close cosines
    fast = categorize(records, CATEGORIES, embedder="minilm", progress=False, dtype="bfloat16", max_length=128)
    assert [r["category"] for r in fast] == [r["category"] for r in out]
    assert [r["category_similarity"] for r in fast] == pytest.approx([r["category_similarity"] for r in out], abs=0.02)
    with pytest.raises(ValueError, match="at least two categories"):
        categorize(records, CATEGORIES[:1], embedder="minilm", model=emb)


WORDS = ("represent the code snippet for classification : def sort items return sorted select from users "
         "where id query sql table a b c").split()
INSTRUCTION = "Represent the code snippet for classification:"


@pytest.fixture(scope="module")
def micro_instructor(tmp_path_factory):
    """A random-weight T5 encoder laid out like hkunlp/instructor-large: encoder at the
    root, mean pooling, a Dense projection, normalisation; a word-level tokenizer that
    ends every sequence with </s> like T5's."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    folder = tmp_path_factory.mktemp("instructor")
    torch.manual_seed(0)
    config = T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    T5EncoderModel(config).save_pretrained(folder)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(dict.fromkeys(WORDS))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "InstructorEmbedding.INSTRUCTOR_Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16, "do_lower_case": False}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False}))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(json.dumps(
        {"in_features": 32, "out_features": 12, "bias": False,
         "activation_function": "torch.nn.modules.linear.Identity"}))
    dense = torch.randn(12, 32)
    torch.save({"linear.weight": dense}, folder / "2_Dense" / "pytorch_model.bin")
    return folder, dense


def _by_hand(folder, dense, instruction, text):
    """One text alone: encoder states of instruction+text, mean over the text's tokens
    (those after the instruction's words), Dense, unit length."""
    from transformers import T5EncoderModel

    words = re.findall(r"\w+|[^\w\s]+", (instruction + text).lower())  # the Whitespace pre-tokenizer
    ids = [WORDS.index(w) + 3 if w in WORDS else 2 for w in words][:15] + [1]  # max_seq_length 16, </s> last
    n_instruction = len(re.findall(r"\w+|[^\w\s]+", instruction))
    with torch.no_grad():
        states = T5EncoderModel.from_pretrained(folder)(input_ids=torch.tensor([ids])).last_hidden_state[0]
    v = states[n_instruction:].mean(0) @ dense.T
    return (v / v.norm()).numpy()


def test_instructor_embedding_equals_hand_computation(micro_instructor):
    folder, dense = micro_instructor
    emb = load_embedder(str(folder), "instructor", device="cpu")
    assert isinstance(emb, InstructorEmbedder) and emb.max_seq_length == 16
    texts = ["  def sort items return sorted items", "select a from users where id",
             "sql " * 30]  # different lengths pad within a batch; the last one is truncated
    got = emb.encode(texts, INSTRUCTION, batch_size=2)
    assert got.shape == (3, 12) and got.dtype == np.float32
    for text, row in zip(texts, got):
        np.testing.assert_allclose(row, _by_hand(folder, dense, INSTRUCTION, text.strip()), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)
    # the instruction is attended (it changes the text's states) but not averaged
    plain = emb.encode(texts[:1], "")[0]
    np.testing.assert_allclose(plain, _by_hand(folder, dense, "", texts[0].strip()), atol=1e-5)
    assert not np.allclose(plain, got[0], atol=1e-3)


def test_categorize_with_instructor_kind(micro_instructor):
    folder, _ = micro_instructor
    records = [{"id": "q", "code": "select a from users"}, {"id": "s", "code": "def sort items"}]
    out = categorize(records, ["sql table query", "sort items"], embedder=str(folder), embedder_kind="instructor",
                     descriptions={}, progress=False)
    emb = load_embedder(str(folder), "instructor", device="cpu")
    snippets = emb.encode([r["code"] for r in records], "Represent the code snippet for classification:")
    targets = emb.encode(["sql table query", "sort items"], "Represent the code for classification:")
    sims = snippets @ targets.T
    out2 = categorize(records, ["sql table query", "sort items"], embedder=str(folder),
                      embedder_kind="instructor", descriptions={}, progress=False, model=emb,
                      instructions={"snippet": "Represent the code snippet for classification:",
                                    "category": "Represent the code for classification:"})
    assert [r["category_similarity"] for r in out2] == pytest.approx(sims.max(1).tolist(), abs=1e-6)
    assert [r["category"] for r in out2] == [["sql table query", "sort items"][k] for k in sims.argmax(1)]
    assert all("category" in r and -1 <= r["category_similarity"] <= 1 for r in out)


def test_unknown_kind_and_instructor_checkpoint_as_sentence_transformer(micro_instructor):
    folder, _ = micro_instructor
    with pytest.raises(ValueError, match="embedder_kind"):
        load_embedder(str(folder), "instruct")
    with pytest.raises(ValueError, match="embedder_kind: instructor"):
        load_embedder(str(folder), "sentence-transformers")
