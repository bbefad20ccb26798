"""Per-example gradients of the response loss w.r.t. the LoRA parameters of the reference model.

The loss of a chat example is the SFT loss of ``scoder.training``: mean token cross-entropy
over the completion (the last assistant turn, tokenised the way TRL's prompt-completion
path does it), truncated to ``max_length`` tokens from the start.

The gradient is flattened in the order of ``lora_parameters``: the trainable parameters of
the PEFT model in ``named_parameters()`` order (lora_A then lora_B of q/k/v/o in each layer,
layer by layer), each weight row-major.  Two ways to get it:

* ``exact_gradient``: one forward/backward per example, concatenating ``param.grad``;
* ``PerExampleGradients``: one forward/backward for a whole batch; hooks on every lora_A /
  lora_B ``nn.Linear`` keep its input x and catch its output gradient delta, and the
  per-example weight gradient is ``delta_b^T x_b`` (the sum over tokens of one example).
  That backward computes activation gradients only (``activation_gradients_only``): the
  batch-summed LoRA weight gradients autograd would add are never needed.

``LoraHooks`` is the shared machinery; ``scoder.influence.structured`` uses it to project
x and delta before they ever form a gradient.  LESS's Adam preconditioning
(``adam_precondition``) uses the reference training's moments (``load_adam_state``).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from scoder.training.trainer import BASE_CHAT_TEMPLATE, to_prompt_completion

IGNORE = -100


def load_tokenizer(model: str, adapter: str | None = None):
    """The tokenizer the reference model was trained with (the adapter folder's, if it saved one)."""
    from transformers import AutoTokenizer

    source = adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else model
    tok = AutoTokenizer.from_pretrained(source)
    if not tok.chat_template:
        tok.chat_template = BASE_CHAT_TEMPLATE  # as scoder.training does for base models
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def encode_chat(tokenizer, record: dict, max_length: int) -> dict:
    """Token ids and labels of a chat example: labels are -100 outside the completion."""
    pc = to_prompt_completion(record)

    def ids(messages, **kw):
        return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)["input_ids"])

    prompt = ids(pc["prompt"], add_generation_prompt=True)
    full = ids(pc["prompt"] + pc["completion"])
    start = 0  # the completion starts where prompt and prompt+completion diverge (as TRL)
    while start < min(len(prompt), len(full)) and prompt[start] == full[start]:
        start += 1
    full = full[:max_length]
    labels = [IGNORE] * min(start, len(full)) + full[start:]
    return {"input_ids": full, "labels": labels, "n_response_tokens": max(len(full) - start, 0)}


def collate(encoded: list[dict], pad_id: int, device) -> dict:
    """Right-padded batch tensors (padding is never attended to by real tokens)."""
    width = max(len(e["input_ids"]) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def load_reference_model(model: str, adapter: str, device: str, dtype: torch.dtype,
                         attn_implementation: str | None = None):
    """Base model + LoRA adapter in eval mode (no dropout), only the LoRA weights trainable;
    ``attn_implementation`` as transformers' (None: the model's default)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from scoder.device import attention_kwargs

    base = AutoModelForCausalLM.from_pretrained(model, dtype=dtype, **attention_kwargs(attn_implementation))
    # PEFT keeps (upcasts) the adapter weights in float32 on a bf16 base
    peft_model = PeftModel.from_pretrained(base, adapter, is_trainable=True)
    peft_model.to(device).eval()
    for name, p in peft_model.named_parameters():
        p.requires_grad_("lora_A" in name or "lora_B" in name)
    return peft_model


def lora_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    """The LoRA weights in the documented flattening order (``named_parameters`` order)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("the reference model has no trainable LoRA parameters")
    return params


def response_losses(model, batch: dict) -> torch.Tensor:
    """Mean response-token loss of each example, shape (B,); 0 for an example without response tokens.

    Logits are computed only at response positions (hidden states through the output
    embedding, as Llama/Qwen/Mistral causal LMs do) so a batch never holds B x T x V logits.
    """
    causal_lm = model.get_base_model()
    hidden = causal_lm.get_decoder()(input_ids=batch["input_ids"],
                                     attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][keep]).float()
    token_loss = F.cross_entropy(logits, targets[keep], reduction="none")
    rows = keep.nonzero()[:, 0]
    sums = torch.zeros(targets.shape[0], device=token_loss.device).index_add(0, rows, token_loss)
    return sums / keep.sum(1).clamp(min=1)


def exact_gradient(model, params: list, batch: dict) -> torch.Tensor:
    """Flattened LoRA gradient of one example's loss (a batch of one), by plain autograd."""
    model.zero_grad(set_to_none=True)
    response_losses(model, batch).sum().backward()
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                      for _, p in params])


def lora_linears(model, params: list) -> list[tuple[torch.nn.Linear, int]]:
    """Each LoRA ``nn.Linear`` (lora_A / lora_B) with the offset of its weight in the flattened gradient."""
    offset_of, off = {}, 0
    for _, p in params:
        offset_of[id(p)] = off
        off += p.numel()
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and id(module.weight) in offset_of:
            if module.bias is not None and module.bias.requires_grad:
                raise ValueError(f"{name}: LoRA biases are not supported by the fast methods")
            layers.append((module, offset_of[id(module.weight)]))
    covered = {id(m.weight) for m, _ in layers}
    missing = [n for n, p in params if id(p) not in covered]
    if missing:
        raise ValueError(f"the fast methods need plain LoRA Linear layers; not covered: {missing[:3]}")
    return sorted(layers, key=lambda item: item[1])


@contextlib.contextmanager
def activation_gradients_only(model, params: list):
    """A backward that computes activation gradients but no LoRA weight gradients (hooks form those
    per example): the LoRA weights stop requiring grad and the input embeddings start to."""
    for _, p in params:
        p.requires_grad_(False)
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, out: out.requires_grad_(True))
    try:
        yield
    finally:
        handle.remove()
        for _, p in params:
            p.requires_grad_(True)


class LoraHooks:
    """Runs one forward/backward of a batch with ``on_backward(module_index, x, delta)`` called for
    every LoRA Linear: x its input (B, T, in), delta the gradient of the summed per-example losses
    w.r.t. its output (B, T, out).  Examples do not interact, so row b of delta is example b's own."""

    def __init__(self, model, params: list):
        self.model, self.params = model, params
        self.layers = lora_linears(model, params)
        self.index = {m: i for i, (m, _) in enumerate(self.layers)}

    def on_forward(self, index: int, x: torch.Tensor):
        """What the backward hook needs of the input (default: the input itself)."""
        return x

    def on_backward(self, index: int, saved, delta: torch.Tensor) -> None:
        raise NotImplementedError

    def run(self, batch: dict) -> None:
        calls = [0] * len(self.layers)

        def forward_hook(module, inputs, output):
            i = self.index[module]
            calls[i] += 1
            if calls[i] > 1:
                raise ValueError("a LoRA layer ran twice in one forward: per-example gradients would be wrong")
            saved = self.on_forward(i, inputs[0].detach())
            output.register_hook(lambda delta: self.on_backward(i, saved, delta))

        handles = [m.register_forward_hook(forward_hook) for m, _ in self.layers]
        try:
            with activation_gradients_only(self.model, self.params):
                response_losses(self.model, batch).sum().backward()
        finally:
            for h in handles:
                h.remove()


class PerExampleGradients(LoraHooks):
    """Per-example flattened LoRA gradients of a whole batch from one forward/backward (hooks):
    the gradient of a LoRA weight for example b is the sum over its tokens of delta_t x_t^T."""

    def __init__(self, model, params: list):
        super().__init__(model, params)
        self.dim = sum(p.numel() for _, p in params)
        self.out: torch.Tensor | None = None
        self.adam: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_backward(self, index, x, delta):
        module, off = self.layers[index]
        size = module.weight.numel()
        g = torch.bmm(delta.transpose(1, 2).float(), x.float()).view(len(delta), size)
        if self.adam is not None:  # elementwise, so it can be applied one weight at a time
            g = adam_precondition(g, self.adam[0][off:off + size], self.adam[1][off:off + size])
        self.out[:, off:off + size].copy_(g)

    def __call__(self, batch: dict, out: torch.Tensor | None = None,
                 adam: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """(B, D) gradients (into ``out`` if given, in its dtype), row b = gradient of example b's mean
        response loss; with ``adam`` = (exp_avg, exp_avg_sq), LESS's Adam direction instead."""
        n = batch["input_ids"].shape[0]
        if out is None:
            out = torch.empty(n, self.dim, dtype=torch.float32, device=batch["input_ids"].device)
        out.zero_()  # a layer the backward never reaches has a zero gradient
        self.out, self.adam = out, adam
        try:
            self.run(batch)
        finally:
            self.out = self.adam = None
        return out


# where a reference checkpoint keeps its Adam moments, in order of preference
OPTIMIZER_FILES = ("adam_moments.safetensors", "optimizer.pt")


def find_optimizer_state(checkpoint: str | os.PathLike) -> Path:
    """The Adam moments saved with a reference checkpoint (LESS's preconditioning needs them)."""
    for name in OPTIMIZER_FILES:
        if (Path(checkpoint) / name).exists():
            return Path(checkpoint) / name
    raise FileNotFoundError(
        f"{checkpoint} has no Adam moments ({' or '.join(OPTIMIZER_FILES)}): LESS's Adam-preconditioned "
        "features need the reference training's optimizer state at this checkpoint; set influence.adam: "
        "false, or have the reference training save it")


def _plain_name(name: str) -> str:
    for prefix in ("module.", "_orig_mod."):  # DDP / torch.compile wrappers
        name = name.removeprefix(prefix)
    return name


def load_adam_state(optimizer_state: str | os.PathLike, params: list, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened Adam moments (exp_avg, exp_avg_sq) in ``params`` order, from ``adam_moments.safetensors``
    (tensors ``<parameter name>.exp_avg`` / ``.exp_avg_sq``) or a torch optimizer ``state_dict``
    (``optimizer.pt`` as HF Trainer writes it: one param group of the LoRA weights in model order)."""
    m, v = [], []
    if str(optimizer_state).endswith(".safetensors"):
        from safetensors.torch import load_file

        tensors = {_plain_name(k): t for k, t in load_file(str(optimizer_state)).items()}
        for name, p in params:
            name = _plain_name(name)
            if f"{name}.exp_avg" not in tensors:
                raise ValueError(f"{optimizer_state} has no moments for {name}")
            m.append(tensors[f"{name}.exp_avg"])
            v.append(tensors[f"{name}.exp_avg_sq"])
    else:
        state = torch.load(optimizer_state, map_location="cpu", weights_only=True)
        order = [i for group in state["param_groups"] for i in group["params"]]
        if len(order) != len(params):
            raise ValueError(f"{optimizer_state} has {len(order)} parameters, the adapter {len(params)}")
        for i, _ in zip(order, params):
            m.append(state["state"][i]["exp_avg"])
            v.append(state["state"][i]["exp_avg_sq"])
    for (name, p), mi, vi in zip(params, m, v):
        if mi.numel() != p.numel() or vi.numel() != p.numel():
            raise ValueError(f"{optimizer_state}: the moments of {name} do not match its shape {tuple(p.shape)}")
    return (torch.cat([t.reshape(-1).float() for t in m]).to(device),
            torch.cat([t.reshape(-1).float() for t in v]).to(device))


def adam_precondition(grads: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                      beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> torch.Tensor:
    """LESS's Adam direction for each row: one Adam step's m/sqrt(v + eps) (no bias correction, as LESS)."""
    m = exp_avg.mul(beta1) + grads * (1 - beta1)
    v = exp_avg_sq.mul(beta2) + grads.square() * (1 - beta2)
    return m / (v + eps).sqrt()
