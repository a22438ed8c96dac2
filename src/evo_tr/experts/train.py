"""LoRA training with PEFT on torch, on the very base model the engine serves (its GGUF, dequantised once)."""

from __future__ import annotations

import json
import logging
import math
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, Field, ValidationError

from evo_tr.engine.transformers_peft import load_torch_base, torch_base_dir  # noqa: F401 (the torch base lives with its backend)
from evo_tr.errors import EvoError
from evo_tr.experts.data import ChatExample

log = logging.getLogger(__name__)

IGNORE = -100  # label id the loss skips (prompt tokens, padding)
STATE_FILE = "trainer_state.pt"


class LoraTrainConfig(BaseModel):
    """One expert's training recipe (configs/lora_EXPERT.yaml); flags override single keys."""

    r: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(1, ge=1)
    grad_accum: int = Field(4, ge=1)
    epochs: int = Field(3, ge=1)
    max_seq: int = Field(512, ge=32)
    eval_every: int = Field(50, ge=1, description="Optimizer steps between validation-loss evaluations.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (smoke runs).")
    kl_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of KL(base || adapted) on assistant tokens: the optimum becomes a mix of the data and the base's "
        "own predictions (1.0 = half each), so a small dataset teaches style without unlearning skill; on anchor examples it is "
        "the only term. 0 = off (not allowed with anchors).",
    )
    seed: int = 0


def default_config_path(expert: str) -> Path:
    return Path(str(resources.files("evo_tr") / "data" / "configs" / f"lora_{expert}.yaml"))


def load_train_config(expert: str, path: Path | None = None, overrides: dict[str, Any] | None = None) -> LoraTrainConfig:
    """YAML recipe (packaged default for the expert, or --config), then flag overrides."""
    path = path or default_config_path(expert)
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise EvoError(f"{path} is not valid YAML: {exc}", "Fix the syntax.") from exc
    elif path != default_config_path(expert):
        raise EvoError(f"No such training config: {path}")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return LoraTrainConfig(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EvoError(f"Invalid training config {path}: {problems}") from exc


# -- the torch base ----------------------------------------------------------------------------
# -- tokenisation with assistant-only labels ----------------------------------------------------
def encode(example: ChatExample, tokenizer, system_prompt: str, max_seq: int) -> tuple[list[int], list[int]] | None:
    """Token ids and labels; only assistant replies (and their end token) are learned. None if nothing fits."""
    messages = [{"role": r, "content": c} for r, c in example.messages]
    if messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    for k in range(1, len(messages) + 1):
        full = tokenizer.apply_chat_template(messages[:k], tokenize=False)
        if not full.startswith(done):
            raise EvoError("The chat template is not additive per message; cannot mask prompt tokens.")
        if messages[k - 1]["role"] == "assistant":
            head = tokenizer.apply_chat_template(messages[: k - 1], tokenize=False, add_generation_prompt=True)
            prompt_part, answer_part = head[len(done) :], full[len(head) :]
            p = tokenizer(prompt_part, add_special_tokens=False)["input_ids"]
            a = tokenizer(answer_part, add_special_tokens=False)["input_ids"]
            ids += p + a
            labels += [IGNORE] * len(p) + a
        else:
            piece = tokenizer(full[len(done) :], add_special_tokens=False)["input_ids"]
            ids += piece
            labels += [IGNORE] * len(piece)
        done = full
    ids, labels = ids[:max_seq], labels[:max_seq]
    if all(x == IGNORE for x in labels):
        return None
    return ids, labels


# -- training ------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """Measured facts about one run, stored in the adapter's metadata."""

    steps: int = 0
    epochs_done: int = 0
    train_loss_first: float | None = None
    train_loss_last: float | None = None
    valid_loss_before: float | None = None
    valid_losses: list[tuple[int, float]] = field(default_factory=list)
    step_s_p50: float | None = None
    peak_rss_mb: float = 0.0
    examples_train: int = 0
    examples_valid: int = 0
    skipped_too_long: int = 0
    resumed_from: str | None = None
    kl_last: float | None = None
    valid_kl_to_base: float | None = None
    valid_kl_anchors: float | None = None
    anchors_train: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["valid_losses"] = [[s, round(v, 4)] for s, v in self.valid_losses]
        return out


class Batch(NamedTuple):
    input_ids: Any
    labels: Any
    mask: Any
    learn: Any  # per row: False for anchors, whose tokens only carry the KL term


def _batches(items: list[tuple], batch_size: int, pad_id: int, rng: random.Random):
    """Padded batches of (ids, labels) or (ids, labels, anchor) items, in an order drawn from rng."""
    import torch

    order = list(range(len(items)))
    rng.shuffle(order)
    for start in range(0, len(order), batch_size):
        chunk = [items[i] for i in order[start : start + batch_size]]
        width = max(len(item[0]) for item in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (ids, lab, *_) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(lab)] = torch.tensor(lab)
            mask[row, : len(ids)] = 1
        learn = torch.tensor([not (len(item) > 2 and item[2]) for item in chunk])
        yield Batch(input_ids, labels, mask, learn)


def learned_labels(batch: Batch):
    """The labels the cross-entropy uses: anchors' tokens are ignored."""
    return batch.labels.masked_fill(~batch.learn[:, None], IGNORE)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def token_ce_sum(logits, labels) -> tuple[Any, int]:
    """Summed next-token cross-entropy over labelled tokens, and their count."""
    import torch

    logits, target = logits[:, :-1], labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE, reduction="sum")
    return loss, int((target != IGNORE).sum())


def evaluate_loss(model, items: list[tuple], pad_id: int, batch_size: int = 4) -> float:
    """Mean per-token loss over the assistant tokens of learnt (non-anchor) items."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in _batches(items, batch_size, pad_id, random.Random(0)):
            loss, n = token_ce_sum(model(input_ids=batch.input_ids, attention_mask=batch.mask).logits, learned_labels(batch))
            total += loss.item()
            count += n
    model.train()
    return total / max(1, count)


def kl_to_base(logits, base_logits, labels):
    """Mean KL(base || adapted) per assistant token: how far the adapter moved the prediction of what it learns."""
    import torch

    keep = labels[:, 1:] != IGNORE
    log_p = torch.log_softmax(logits[:, :-1][keep].float(), dim=-1)
    log_q = torch.log_softmax(base_logits[:, :-1][keep].float(), dim=-1)
    return torch.nn.functional.kl_div(log_p, log_q, log_target=True, reduction="batchmean")


def base_logits(model, input_ids, mask):
    """The frozen base's logits, from the same PEFT model with its adapter switched off."""
    import torch

    with torch.no_grad(), model.disable_adapter():
        return model(input_ids=input_ids, attention_mask=mask).logits


def evaluate_kl(model, items: list[tuple], pad_id: int, batch_size: int = 4) -> float:
    """Mean per-token KL(base || adapted) over assistant tokens: how much the adapter changed the model."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in _batches(items, batch_size, pad_id, random.Random(0)):
            n = int((batch.labels[:, 1:] != IGNORE).sum())
            logits = model(input_ids=batch.input_ids, attention_mask=batch.mask).logits
            total += kl_to_base(logits, base_logits(model, batch.input_ids, batch.mask), batch.labels).item() * n
            count += n
    model.train()
    return total / max(1, count)


def train_lora(
    base_model,
    tokenizer,
    train_set: list[ChatExample],
    valid_set: list[ChatExample],
    cfg: LoraTrainConfig,
    out_dir: Path,
    *,
    system_prompt: str,
    resume: bool = False,
    on_step: Callable[[dict[str, Any]], None] = lambda _: None,
) -> tuple[Any, TrainResult]:
    """Train a LoRA on `base_model`; checkpoints every epoch in out_dir/checkpoints; returns the PEFT model."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    torch.manual_seed(cfg.seed)
    result = TrainResult()
    started = time.perf_counter()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    encode_all = lambda rows: [(*e, x.anchor) for x in rows if (e := encode(x, tokenizer, system_prompt, cfg.max_seq))]  # noqa: E731
    train_items, valid_items = encode_all(train_set), encode_all(valid_set)
    result.skipped_too_long = len(train_set) + len(valid_set) - len(train_items) - len(valid_items)
    result.examples_train, result.examples_valid = len(train_items), len(valid_items)
    result.anchors_train = sum(anchor for *_, anchor in train_items)
    if not train_items:
        raise EvoError("No training example has assistant tokens within max_seq.", "Raise max_seq or check the data.")
    if all(anchor for *_, anchor in train_items):
        raise EvoError("Every training example is an anchor, so there is nothing to learn.", "Add examples without \"anchor\": true.")
    if cfg.kl_weight == 0 and any(anchor for *_, anchor in train_items):
        raise EvoError("The data has anchor examples but kl_weight is 0, so they would do nothing.", "Set kl_weight > 0 (config or --kl-weight).")

    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules, task_type="CAUSAL_LM")
    model = get_peft_model(base_model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(math.ceil(len(train_items) / cfg.batch_size) / cfg.grad_accum)
    total_steps = min(cfg.max_steps or 10**9, steps_per_epoch * cfg.epochs)
    warmup = max(1, int(cfg.warmup_ratio * total_steps))
    schedule = lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / total_steps) if total_steps > warmup else 1.0  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    ckpt_root = out_dir / "checkpoints"
    start_epoch, step = 0, 0
    if resume:
        latest = sorted(ckpt_root.glob("epoch-*"), key=lambda p: int(p.name.split("-")[1]))
        if not latest:
            raise EvoError(f"Nothing to resume: no checkpoint under {ckpt_root}.", "Run without --resume.")
        ck = latest[-1]
        set_peft_model_state_dict(model, load_file(ck / "adapter_model.safetensors"))
        state = torch.load(ck / STATE_FILE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, step = state["epoch"], state["step"]
        result.valid_losses = [tuple(v) for v in state.get("valid_losses", [])]
        result.resumed_from = ck.name
    elif valid_items:
        result.valid_loss_before = round(evaluate_loss(model, valid_items, pad_id), 4)

    model.train()
    step_times: list[float] = []
    for epoch in range(start_epoch, cfg.epochs):
        rng = random.Random(cfg.seed * 1000 + epoch)
        accum, micro_losses, micro_kls, t0 = 0, [], [], time.perf_counter()
        batches = list(_batches(train_items, cfg.batch_size, pad_id, rng))
        for index, batch in enumerate(batches):
            logits = model(input_ids=batch.input_ids, attention_mask=batch.mask).logits
            ce_sum, n_learn = token_ce_sum(logits, learned_labels(batch))
            loss = ce_sum / max(1, n_learn)
            if n_learn:
                micro_losses.append(loss.item())
            if cfg.kl_weight > 0:
                kl = kl_to_base(logits, base_logits(model, batch.input_ids, batch.mask), batch.labels)
                micro_kls.append(kl.item())
                loss = loss + cfg.kl_weight * kl
            (loss / cfg.grad_accum).backward()
            accum += 1
            if accum < cfg.grad_accum and index < len(batches) - 1:
                continue  # the epoch's last, shorter accumulation still makes a step
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            step_times.append(time.perf_counter() - t0)
            # an all-anchor step learns nothing: it reports the last learning step's loss
            step_loss = sum(micro_losses) / len(micro_losses) if micro_losses else (result.train_loss_last or 0.0)
            result.train_loss_first = result.train_loss_first if result.train_loss_first is not None else round(step_loss, 4)
            result.train_loss_last = round(step_loss, 4)
            info = {"step": step, "total": total_steps, "epoch": epoch + 1, "loss": step_loss, "lr": scheduler.get_last_lr()[0]}
            if micro_kls:
                result.kl_last = round(sum(micro_kls) / len(micro_kls), 5)
                info["kl"] = result.kl_last
            if valid_items and step % cfg.eval_every == 0:
                vl = evaluate_loss(model, valid_items, pad_id)
                result.valid_losses.append((step, vl))
                info["valid_loss"] = vl
            on_step(info)
            accum, micro_losses, micro_kls, t0 = 0, [], [], time.perf_counter()
            if step >= total_steps:
                break
        if valid_items and (not result.valid_losses or result.valid_losses[-1][0] != step):
            result.valid_losses.append((step, evaluate_loss(model, valid_items, pad_id)))
        _checkpoint(model, optimizer, scheduler, ckpt_root / f"epoch-{epoch + 1}", epoch + 1, step, result)
        result.epochs_done = epoch + 1
        if step >= total_steps:
            break
    result.steps = step
    if valid_items:
        result.valid_kl_to_base = round(evaluate_kl(model, valid_items, pad_id), 5)
        anchors = [item for item in valid_items if item[2]]
        if anchors:
            result.valid_kl_anchors = round(evaluate_kl(model, anchors, pad_id), 5)
    if step_times:
        result.step_s_p50 = round(sorted(step_times)[len(step_times) // 2], 3)
    result.peak_rss_mb = round(_peak_rss_mb(), 1)
    result.seconds = round(time.perf_counter() - started, 1)
    return model, result


def _checkpoint(model, optimizer, scheduler, folder: Path, epoch: int, step: int, result: TrainResult) -> None:
    """Adapter weights plus optimizer/scheduler state, written to a temp dir then renamed (never half a checkpoint)."""
    import shutil

    import torch

    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch, "step": step, "valid_losses": result.valid_losses},
        tmp / STATE_FILE,
    )
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


def save_adapter(model, folder: Path, base_name: str) -> Path:
    """PEFT adapter files (adapter_config.json + safetensors) with the base recorded by name."""
    model.save_pretrained(folder)
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_name  # PEFT writes "." for a model loaded from a folder
    config_path.write_text(json.dumps(config, indent=2))
    return folder
