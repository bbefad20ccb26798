"""Per-example gradients of the response loss w.r.t. the LoRA parameters of the reference model.

The loss of a chat example is the SFT loss of ``scoder.train``: mean token cross-entropy
over the completion (the last assistant turn, tokenised the way TRL's prompt-completion
path does it), truncated to ``max_length`` tokens from the start.

The gradient is flattened in the order of ``lora_parameters``: the trainable parameters of
the PEFT model in ``named_parameters()`` order (lora_A then lora_B of q/k/v/o in each layer,
layer by layer), each weight row-major.  Two ways to get it:

* ``exact_gradient``: one forward/backward per example, concatenating ``param.grad``;
* ``PerExampleGradients``: one forward/backward for a whole batch; hooks on every lora_A /
  lora_B ``nn.Linear`` keep its input x and catch its output gradient delta, and the
  per-example weight gradient is ``delta_b^T x_b`` (the sum over tokens of one example).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from scoder.train import BASE_CHAT_TEMPLATE, to_prompt_completion

IGNORE = -100


def load_tokenizer(model: str, adapter: str | None = None):
    """The tokenizer the reference model was trained with (the adapter folder's, if it saved one)."""
    from transformers import AutoTokenizer

    source = adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else model
    tok = AutoTokenizer.from_pretrained(source)
    if not tok.chat_template:
        tok.chat_template = BASE_CHAT_TEMPLATE  # as scoder.train does for base models
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


def load_reference_model(model: str, adapter: str, device: str, dtype: torch.dtype):
    """Base model + LoRA adapter in eval mode (no dropout), only the LoRA weights trainable."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
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


class PerExampleGradients:
    """Per-example flattened LoRA gradients of a whole batch from one forward/backward (hooks)."""

    def __init__(self, model, params: list):
        self.model = model
        self.dim = sum(p.numel() for _, p in params)
        by_param = {id(p): n for n, p in params}
        self.offsets: dict[torch.nn.Module, int] = {}
        offset_of, off = {}, 0
        for n, p in params:
            offset_of[n] = off
            off += p.numel()
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and id(module.weight) in by_param:
                if module.bias is not None and module.bias.requires_grad:
                    raise ValueError(f"{name}: LoRA biases are not supported by the fast method")
                self.offsets[module] = offset_of[by_param[id(module.weight)]]
        covered = {by_param[id(m.weight)] for m in self.offsets}
        missing = [n for n, _ in params if n not in covered]
        if missing:
            raise ValueError(f"fast per-example gradients need plain LoRA Linear layers; not covered: {missing[:3]}")
        self.buffer: torch.Tensor | None = None

    def _forward_hook(self, module, inputs, output):
        x = inputs[0].detach()
        off = self.offsets[module]

        def on_grad(delta):
            # sum over tokens of delta_t x_t^T, one (out, in) matrix per example
            out_f, in_f = module.weight.shape
            g = torch.bmm(delta.transpose(1, 2).float(), x.float())
            self.buffer[:, off:off + out_f * in_f].view(-1, out_f, in_f).add_(g)

        output.register_hook(on_grad)

    def __call__(self, batch: dict) -> torch.Tensor:
        """(B, D) float32 gradients, row b = gradient of example b's mean response loss."""
        n = batch["input_ids"].shape[0]
        self.buffer = torch.zeros(n, self.dim, dtype=torch.float32, device=batch["input_ids"].device)
        handles = [m.register_forward_hook(self._forward_hook) for m in self.offsets]
        try:
            self.model.zero_grad(set_to_none=True)
            # examples do not interact, so d(sum of losses)/d(output of example b) is example b's own
            response_losses(self.model, batch).sum().backward()
        finally:
            for h in handles:
                h.remove()
        self.model.zero_grad(set_to_none=True)
        grads, self.buffer = self.buffer, None
        return grads


def load_adam_state(optimizer_state: str | os.PathLike, params: list, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened Adam moments (exp_avg, exp_avg_sq) from a HF Trainer ``optimizer.pt``, in ``params`` order."""
    state = torch.load(optimizer_state, map_location="cpu", weights_only=True)
    order = [i for group in state["param_groups"] for i in group["params"]]
    if len(order) != len(params):
        raise ValueError(f"optimizer state has {len(order)} parameters, the adapter {len(params)}")
    m, v = [], []
    for i, (name, p) in zip(order, params):
        s = state["state"][i]
        if s["exp_avg"].numel() != p.numel():
            raise ValueError(f"optimizer state {i} does not match {name}")
        m.append(s["exp_avg"].reshape(-1).float())
        v.append(s["exp_avg_sq"].reshape(-1).float())
    return torch.cat(m).to(device), torch.cat(v).to(device)


def adam_precondition(grads: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                      beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> torch.Tensor:
    """LESS's Adam direction for each row: one Adam step's m/sqrt(v + eps) (no bias correction, as LESS)."""
    m = exp_avg.mul(beta1) + grads * (1 - beta1)
    v = exp_avg_sq.mul(beta2) + grads.square() * (1 - beta2)
    return m / (v + eps).sqrt()
