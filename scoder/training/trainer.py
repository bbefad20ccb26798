"""Fine-tuning for every model the workflow trains: synthesizer, scorer, reference model, target.

``train_sft`` runs TRL's ``SFTTrainer`` on chat examples with the loss on the
assistant response only, as a full fine-tune or with LoRA (PEFT), at an exact
global batch size, and exports M checkpoints evenly spaced over training as
Hugging Face folders ``out_dir/ckpt1..ckptM`` (the paper samples from all M).
Trainer state lives in ``out_dir/_state`` so an interrupted run resumes where
it stopped; a finished run with the same arguments and data is not redone
(``scoder.training.checkpoints``). ``train_dpo`` runs TRL's ``DPOTrainer``
(SODA's contrastive stage) the same way.  Stages launch these through
``scoder.training.launch``.

One process on CPU or one GPU::

    python -m scoder.training --model MODEL --data train.jsonl --out OUT --settings settings.json

Several GPUs with DeepSpeed ZeRO-3 (``config/accelerate/zero2.yaml`` for ZeRO-2,
``multi_gpu.yaml`` for plain DDP)::

    accelerate launch --config_file config/accelerate/zero3.yaml --num_processes 8 \\
        -m scoder.training --model MODEL --data train.jsonl --out OUT --settings settings.json
"""
from __future__ import annotations

import argparse
import json
import os

from scoder.io import read_json, read_jsonl
from scoder.training.checkpoints import checkpoint_steps, is_main_process, run

__all__ = ["BASE_CHAT_TEMPLATE", "build_sft_trainer", "checkpoint_steps", "gradient_accumulation_steps",
           "to_preference", "to_prompt_completion", "train_dpo", "train_sft", "world_size"]

# Magicoder's instruction format, used only when a tokenizer has no chat template
# (base models such as DeepSeek-Coder-6.7B-Base or Llama-3.1-8B); it is saved with
# every exported checkpoint so generation later formats prompts the same way.
BASE_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}{{ 'You are an exceptionally intelligent coding assistant that "
    "consistently delivers accurate and reliable responses to user instructions.\n\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{%- elif message['role'] == 'user' %}{{ '@@ Instruction\n' + message['content'] + '\n\n' }}"
    "{%- else %}{{ '@@ Response\n' + message['content'] + eos_token + '\n\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '@@ Response\n' }}{%- endif %}"
)

# the paper's reference model adapts the attention projections (r=128, alpha=512)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


# ---- data ---------------------------------------------------------------------------------------

def to_prompt_completion(record: dict) -> dict:
    """Chat example -> TRL's conversational prompt-completion form: the last assistant
    turn is the completion (the only tokens with loss), all turns before it the prompt."""
    if "prompt" in record and "completion" in record:
        return {"prompt": record["prompt"], "completion": record["completion"]}
    messages = [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise ValueError("a chat example needs at least one prompt turn and must end with an assistant turn")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def to_preference(record: dict) -> dict:
    """Preference record -> TRL's conversational preference form (prompt turns, one chosen
    and one rejected assistant turn); accepts plain strings or full conversations."""
    def turns(x, role):
        return [{"role": role, "content": x}] if isinstance(x, str) else [
            {"role": m["role"], "content": m["content"]} for m in x]

    prompt = turns(record["prompt"], "user")
    out = {"prompt": prompt}
    for key in ("chosen", "rejected"):
        answer = turns(record[key], "assistant")
        out[key] = answer[len(prompt):] if answer[:len(prompt)] == prompt else answer
    return out


# ---- batch and trainer arguments ----------------------------------------------------------------

def world_size() -> int:
    """Number of data-parallel processes: accelerate's, once it is set up, else the
    ``WORLD_SIZE`` that torchrun and ``accelerate launch`` export."""
    from accelerate import PartialState
    if PartialState._shared_state:
        return PartialState().num_processes
    return int(os.environ.get("WORLD_SIZE", "1"))


def gradient_accumulation_steps(global_batch_size: int, per_device_batch_size: int, num_processes: int) -> int:
    """Accumulation that makes the global batch exact; refuses a batch that does not divide."""
    per_step = per_device_batch_size * num_processes
    if global_batch_size <= 0 or global_batch_size % per_step:
        raise ValueError(f"global_batch_size={global_batch_size} is not a multiple of per_device_batch_size="
                         f"{per_device_batch_size} x world_size={num_processes}")
    return global_batch_size // per_step


def _checked(config, global_batch_size: int):
    """The config, once the processes the trainer really runs give the exact global batch."""
    actual = config.per_device_train_batch_size * config.gradient_accumulation_steps * config.world_size
    if actual != global_batch_size:
        raise RuntimeError(f"the trainer runs {config.world_size} process(es), not the {os.environ.get('WORLD_SIZE')}"
                           f" of WORLD_SIZE: global batch {actual} != {global_batch_size}")
    return config


def _training_args(output_dir: str, *, epochs, learning_rate, global_batch_size, per_device_batch_size,
                   max_length, warmup_ratio, lr_scheduler, seed, bf16, gradient_checkpointing, deepspeed,
                   save_steps, lora=None, fp16=False, attn_implementation=None) -> dict:
    """Arguments shared by ``SFTConfig`` and ``DPOConfig``; the exported checkpoints force
    extra trainer-state saves (``scoder.training.checkpoints``).  The model loads in float32
    (TRL's default): bf16 / fp16 are mixed precision over float32 weights."""
    import torch

    from scoder.device import attention_kwargs

    if fp16 and bf16:
        raise ValueError("fp16 and bf16 mixed precision exclude each other (resources dtype: float16 or bfloat16)")
    if bf16 is None:
        bf16 = not fp16 and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return dict(
        model_init_kwargs=attention_kwargs(attn_implementation) or None,
        output_dir=output_dir, num_train_epochs=epochs, learning_rate=learning_rate,
        per_device_train_batch_size=per_device_batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps(
            global_batch_size, per_device_batch_size, world_size()),
        max_length=max_length, warmup_steps=warmup_ratio, lr_scheduler_type=lr_scheduler,  # < 1: a ratio
        seed=seed, data_seed=seed,
        bf16=bf16, fp16=fp16, activation_checkpointing=gradient_checkpointing, deepspeed=deepspeed,
        # use_cpu lets torchrun run several CPU processes (gloo), e.g. to test multi-process runs
        use_cpu=not torch.cuda.is_available(), dataloader_pin_memory=torch.cuda.is_available(),
        # every step is logged so train_log.json has the whole loss curve
        logging_steps=1, report_to="none", disable_tqdm=True,
        save_strategy="steps", save_steps=save_steps or 10**9, save_total_limit=1,
    )


def _lora(lora: dict | None) -> dict | None:
    """LoRA settings with the paper's defaults filled in (attention projections, no dropout)."""
    if lora is None:
        return None
    return {"r": lora["r"], "alpha": lora["alpha"], "dropout": float(lora.get("dropout", 0.0)),
            "target_modules": list(lora.get("target_modules") or LORA_TARGETS)}


def _peft_config(lora: dict | None):
    if lora is None:
        return None
    from peft import LoraConfig
    return LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                      target_modules=lora["target_modules"], task_type="CAUSAL_LM")


def _load_tokenizer(model: str):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model)
    if not tok.chat_template:
        tok.chat_template = BASE_CHAT_TEMPLATE
    return tok


def _save_dtype(model: str, lora: dict | None) -> str | None:
    """The starting model's 16-bit dtype, for full-model checkpoints (training runs in fp32)."""
    if lora is not None:
        return None
    from transformers import AutoConfig
    name = str(getattr(AutoConfig.from_pretrained(model), "dtype", None)).replace("torch.", "")
    return name if name in ("bfloat16", "float16") else None


def _hparams(epochs, learning_rate, warmup_ratio, lora, fp16=False, attn_implementation=None, **rest) -> dict:
    # floats and LoRA defaults normalised so equal settings always give the same fingerprint; settings
    # added later appear only when set, so runs without them keep their fingerprints
    later = {**({"fp16": True} if fp16 else {}),
             **({"attn_implementation": attn_implementation} if attn_implementation not in (None, "auto") else {})}
    return dict(epochs=float(epochs), learning_rate=float(learning_rate), warmup_ratio=float(warmup_ratio),
                lora=_lora(lora), **rest, **later)


# ---- SFT and DPO --------------------------------------------------------------------------------

def build_sft_trainer(model: str, records: list[dict], output_dir: str, *, epochs: float, learning_rate: float,
                      global_batch_size: int, per_device_batch_size: int = 1, max_length: int = 1024,
                      lora: dict | None = None, warmup_ratio: float = 0.0, lr_scheduler: str = "linear",
                      seed: int = 0, bf16: bool | None = None, fp16: bool = False, gradient_checkpointing: bool = False,
                      attn_implementation: str | None = None, deepspeed: str | None = None,
                      save_steps: int | None = None, callbacks: list | None = None):
    """The ``SFTTrainer`` that ``train_sft`` runs, untrained: its dataset and collator show
    exactly what the model learns (labels are -100 outside the assistant response)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = _training_args(output_dir, epochs=epochs, learning_rate=learning_rate,
                          global_batch_size=global_batch_size, per_device_batch_size=per_device_batch_size,
                          max_length=max_length, warmup_ratio=warmup_ratio, lr_scheduler=lr_scheduler, seed=seed,
                          bf16=bf16, fp16=fp16, gradient_checkpointing=gradient_checkpointing,
                          attn_implementation=attn_implementation, deepspeed=deepspeed, save_steps=save_steps)
    # SmolLM2/Qwen/Llama templates lack {% generation %} markers, so the response-only loss
    # comes from the prompt-completion split rather than assistant masks
    config = _checked(SFTConfig(**args, completion_only_loss=True), global_batch_size)
    dataset = Dataset.from_list([to_prompt_completion(r) for r in records])
    return SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=_load_tokenizer(model),
                      peft_config=_peft_config(_lora(lora)), callbacks=callbacks)


def train_sft(model: str, records: list[dict], out_dir: str, *, epochs: float, learning_rate: float,
              global_batch_size: int, per_device_batch_size: int = 1, max_length: int = 1024,
              lora: dict | None = None, num_checkpoints: int = 1, warmup_ratio: float = 0.0,
              lr_scheduler: str = "linear", seed: int = 0, bf16: bool | None = None, fp16: bool = False,
              gradient_checkpointing: bool = False, attn_implementation: str | None = None,
              deepspeed: str | None = None, resume: bool = True,
              save_steps: int | None = None, save_adam_moments: bool = False,
              callbacks: list | None = None) -> list[str]:
    """Fine-tune ``model`` on chat examples (loss on the response), full or LoRA, and return
    the paths of the M = ``num_checkpoints`` checkpoints, evenly spaced over training.
    ``bf16`` (None: where the GPU has it) / ``fp16``: mixed precision; ``attn_implementation``:
    transformers' attention (None: the model's default).
    ``save_adam_moments`` (LoRA only) keeps each checkpoint's Adam moments for LESS's features."""
    if save_adam_moments and lora is None:  # a full model's moments are twice its size
        raise ValueError("save_adam_moments is for LoRA training (the reference model): set lora, or drop the flag")
    hparams = _hparams(epochs, learning_rate, warmup_ratio, lora, global_batch_size=global_batch_size,
                       per_device_batch_size=per_device_batch_size, max_length=max_length,
                       lr_scheduler=lr_scheduler, seed=seed, bf16=bf16, fp16=fp16,
                       gradient_checkpointing=gradient_checkpointing, attn_implementation=attn_implementation,
                       deepspeed=deepspeed, save_steps=save_steps)
    settings = {"method": "sft", "model": model, "num_checkpoints": num_checkpoints, **hparams}
    if save_adam_moments:  # only then, so runs without moments keep their fingerprints
        settings["save_adam_moments"] = True

    def build(state_dir, cbs):
        return build_sft_trainer(model, records, state_dir, callbacks=cbs, **hparams)

    return run(build, out_dir, settings, records, num_checkpoints=num_checkpoints, world_size=world_size(),
               resume=resume, save_dtype=_save_dtype(model, hparams["lora"]),
               save_adam_moments=save_adam_moments, callbacks=callbacks)


def train_dpo(model: str, records: list[dict], out_dir: str, *, beta: float, epochs: float, learning_rate: float,
              global_batch_size: int, per_device_batch_size: int = 1, max_length: int = 1024,
              lora: dict | None = None, warmup_ratio: float = 0.0, lr_scheduler: str = "linear", seed: int = 0,
              bf16: bool | None = None, fp16: bool = False, gradient_checkpointing: bool = False,
              attn_implementation: str | None = None, deepspeed: str | None = None,
              resume: bool = True, save_steps: int | None = None, callbacks: list | None = None) -> str:
    """DPO (sigmoid loss) on {"prompt", "chosen", "rejected"} records with the starting model
    as the frozen reference; returns the trained checkpoint ``out_dir/ckpt1``."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    hparams = _hparams(epochs, learning_rate, warmup_ratio, lora, global_batch_size=global_batch_size,
                       per_device_batch_size=per_device_batch_size, max_length=max_length,
                       lr_scheduler=lr_scheduler, seed=seed, bf16=bf16, fp16=fp16,
                       gradient_checkpointing=gradient_checkpointing, attn_implementation=attn_implementation,
                       deepspeed=deepspeed, save_steps=save_steps)
    settings = {"method": "dpo", "model": model, "beta": float(beta), **hparams}

    def build(state_dir, cbs):
        config = _checked(DPOConfig(**_training_args(state_dir, **hparams), beta=beta), global_batch_size)
        dataset = Dataset.from_list([to_preference(r) for r in records])
        return DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=_load_tokenizer(model),
                          peft_config=_peft_config(hparams["lora"]), callbacks=cbs)

    return run(build, out_dir, settings, records, num_checkpoints=1, world_size=world_size(), resume=resume,
               save_dtype=_save_dtype(model, hparams["lora"]), callbacks=callbacks)[0]


# ---- command line -------------------------------------------------------------------------------

_FLAGS = {  # flag -> type; each overrides the same key of --settings
    "epochs": float, "learning_rate": float, "global_batch_size": int, "per_device_batch_size": int,
    "max_length": int, "num_checkpoints": int, "warmup_ratio": float, "lr_scheduler": str, "seed": int,
    "deepspeed": str, "save_steps": int, "beta": float, "lora": json.loads, "attn_implementation": str,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scoder.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hugging Face folder or hub id of the starting model")
    parser.add_argument("--data", required=True, help="JSONL of chat examples (SFT) or preference records (DPO)")
    parser.add_argument("--out", required=True, help="output folder: ckpt1..ckptM, train_log.json")
    parser.add_argument("--method", choices=["sft", "dpo"], default="sft")
    parser.add_argument("--settings", help="JSON file, or inline JSON object, of keyword arguments of "
                                           "train_sft / train_dpo; flags override it")
    for flag, typ in _FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=typ, default=None,
                            help="JSON object {r, alpha, dropout, target_modules}" if flag == "lora" else None)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 mixed precision (default: where the GPU supports it)")
    parser.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=None,
                        help="fp16 mixed precision (GPUs without bf16)")
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--save-adam-moments", action=argparse.BooleanOptionalAction, default=None,
                        help="keep each checkpoint's Adam moments (LoRA only; LESS's Adam features)")
    parser.add_argument("--no-resume", dest="resume", action="store_false", default=None,
                        help="retrain from step 0 even if a saved state or finished run matches")
    args = parser.parse_args(argv)

    settings = {}
    if args.settings:
        settings = json.loads(args.settings) if args.settings.lstrip().startswith("{") else read_json(args.settings)
    settings.update({k: v for k, v in vars(args).items()
                     if v is not None and k not in ("model", "data", "out", "method", "settings")})
    records = read_jsonl(args.data)
    if args.method == "dpo":
        settings.pop("num_checkpoints", None)
        settings.pop("save_adam_moments", None)
        paths = [train_dpo(args.model, records, args.out, **settings)]
    else:
        settings.pop("beta", None)
        paths = train_sft(args.model, records, args.out, **settings)
    if is_main_process():
        print("\n".join(paths))

