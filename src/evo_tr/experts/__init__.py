"""Experts: LoRA adapters on the one frozen base model — data, training, export, registry, attachment."""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo_tr.config import Settings
from evo_tr.errors import EvoError
from evo_tr.experts.data import clean, dataset_hash, load_strict, packaged_dir, split
from evo_tr.experts.registry import GGUF_NAME, PEFT_DIR, AdapterRegistry, AdapterVersion, check_base
from evo_tr.models.store import ModelStore

if TYPE_CHECKING:
    from evo_tr.engine import Engine

log = logging.getLogger(__name__)

EXPERTS = ("tr_chat", "python_coder")


def adapters_dir(settings: Settings) -> Path:
    return settings.home / "adapters"


def registry(settings: Settings) -> AdapterRegistry:
    """The adapter registry; with a vLLM-style remote engine, every switch of a version is published there first."""
    from evo_tr.experts.publish import auto_publisher

    return AdapterRegistry(adapters_dir(settings), publisher=auto_publisher(settings))


@dataclass(frozen=True)
class BaseModelInfo:
    name: str
    path: Path
    sha256: str


def base_info(settings: Settings, model: str | None = None) -> BaseModelInfo:
    """The served base model: its GGUF path (provisioned if embedded) and pinned SHA-256."""
    store = ModelStore(settings.models_dir)
    name = model or settings.model
    path = store.provision(name)
    return BaseModelInfo(name, path, store.registry.get(name).sha256 or "")


def staging_dir(settings: Settings, expert: str, model: str) -> Path:
    """Stable per (expert, model) so `--resume` finds the last run's checkpoints."""
    return adapters_dir(settings) / expert / f".train-{model}"


def run_training(
    settings: Settings,
    expert: str,
    *,
    data: Path | None = None,
    config_path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    model: str | None = None,
    activate: bool = True,
    say: Callable[[str], None] = lambda _: None,
    on_step: Callable[[dict[str, Any]], None] = lambda _: None,
) -> AdapterVersion:
    """Data → clean → split → LoRA training → PEFT save → GGUF export → registered adapter version."""
    from evo_tr.experts.export import export_gguf
    from evo_tr.experts.train import load_torch_base, load_train_config, save_adapter, train_lora

    cfg = load_train_config(expert, config_path, overrides)
    source = data or packaged_dir(expert)
    examples = load_strict(source)
    cleaned, report = clean(examples)
    train_set, valid_set = split(cleaned)
    say(f"{expert}: {len(examples)} examples, {report.kept} after cleaning, {len(train_set)} train / {len(valid_set)} valid")
    base = base_info(settings, model)
    torch_model, tokenizer = load_torch_base(settings, base.name, base.path, base.sha256, say)
    staging = staging_dir(settings, expert, base.name)
    if not resume:
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    peft_model, result = train_lora(
        torch_model, tokenizer, train_set, valid_set, cfg, staging, system_prompt=settings.prompt_for(expert), resume=resume, on_step=on_step,
    )
    save_adapter(peft_model, staging / PEFT_DIR, base.name)
    export_gguf(staging / PEFT_DIR, base.path, staging / GGUF_NAME)
    shutil.rmtree(staging / "checkpoints", ignore_errors=True)
    meta = {
        "expert": expert,
        "base": {"name": base.name, "sha256": base.sha256, "file": base.path.name},
        "dataset": {
            "source": str(source), "sha256": dataset_hash(cleaned), "examples": len(examples), "train": len(train_set),
            "valid": len(valid_set), "cleaning": report.as_dict(),
        },
        "config": cfg.model_dump(),
        "system_prompt": settings.prompt_for(expert),
        "metrics": result.as_dict(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "evo " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if Path(sys.argv[0]).name in ("evo", "__main__.py") else None,
    }
    gated = activate and expert in settings.night.code_gate_experts
    version = registry(settings).register(expert, staging, meta, activate=activate and not gated)
    if gated:  # promoted only through the code gate (experts/gate.py); the version stays registered either way
        promote_through_code_gate(settings, version, model=model, say=say)
    return version


def promote_through_code_gate(settings: Settings, version: AdapterVersion, *, model: str | None = None,
                              say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the code gate on a registered version, write its decision to gate.json, activate it only if promoted."""
    import json

    from evo_tr.experts.gate import run_code_gate

    decision = run_code_gate(settings, version, model=model, say=say)
    gate = {**decision.as_dict(), "candidate": version.tag}
    (version.path / "gate.json").write_text(json.dumps(gate, indent=2, ensure_ascii=False), encoding="utf-8")
    say(f"code gate for {version.expert} {version.tag}: {decision.reason}")
    if decision.promote:
        registry(settings).activate(version.expert, version.tag)
    return gate


def attach_active_adapters(engine, settings: Settings, base: BaseModelInfo) -> tuple[list[AdapterVersion], list[str]]:
    """Load every expert's active adapter into the engine; mismatched or broken ones are refused with a notice."""
    reg = registry(settings)
    attached, notices = [], []
    if not engine.capabilities.lora_hot_swap:
        return attached, [f"{expert}: the {engine.name} backend serves no LoRA adapters" for expert in reg.experts() if reg.active(expert)]
    for expert in reg.experts():
        try:
            version = reg.active(expert)
            if version is None:
                continue
            if version.packaged and version.base_sha256 != base.sha256:
                continue  # shipped adapters serve the base they were trained for; other models just run without them
            check_base(version, base.name, base.sha256)
            engine.attach_adapter(version)
            attached.append(version)
        except EvoError as exc:
            notices.append(f"{expert}: {exc.message}")
            log.warning("adapter %s not attached: %s", expert, exc.message)
    return attached, notices


def load_with_experts(settings: Settings, model: str | None = None) -> tuple[Engine, list[AdapterVersion], list[str]]:
    """The engine for `model` with every active adapter attached: what eval commands and their worker processes serve."""
    from evo_tr.engine import load_engine

    engine = load_engine(settings, model)
    attached, notices = attach_active_adapters(engine, settings, base_info(settings, model))
    return engine, attached, notices
