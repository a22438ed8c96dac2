"""Inference backends behind one Engine contract."""

from __future__ import annotations

from evo_tr.config import Settings
from evo_tr.engine.base import Completion, Engine, FitResult, GenerationConfig, GenerationStats, Message
from evo_tr.models.store import ModelStore, Progress

__all__ = ["Completion", "Engine", "FitResult", "GenerationConfig", "GenerationStats", "Message", "load_engine"]


def generation_config(settings: Settings, **overrides) -> GenerationConfig:
    """Sampling parameters from settings, with per-call overrides."""
    values = settings.generation.model_dump()
    values.update({k: v for k, v in overrides.items() if v is not None})
    return GenerationConfig(**values)


def load_engine(settings: Settings, model: str | None = None, progress: Progress | None = None) -> Engine:
    """Provision (embedded models only, no network) and load the configured model."""
    from evo_tr.engine.llama_cpp import LlamaCppEngine

    name = model or settings.model
    path = ModelStore(settings.models_dir).provision(name, progress)
    cfg = settings.engine
    return LlamaCppEngine(
        path,
        n_ctx=cfg.n_ctx,
        n_threads=cfg.n_threads,
        n_threads_batch=cfg.n_threads_batch,
        n_batch=cfg.n_batch,
        model_name=name,
    )
