"""Inference backends behind one Engine contract, registered as plugins, each owned by one worker thread.

Backends register in the entry-point group `evo_tr.engines` (the way simonw/llm registers models), so a
new backend is one module plus one line in a package's metadata:

    [project.entry-points."evo_tr.engines"]
    my_backend = "my_package.engine:MyEngine"

`engine.backend` in the settings chooses one; `load_engine` provisions the artefact it asks for (a GGUF
file today, a server URL for remote engines) and hands the loaded engine to its owner thread.
"""

from __future__ import annotations

import logging
from importlib import import_module
from importlib.metadata import entry_points

from evo_tr.config import Settings
from evo_tr.engine.base import Artifact, Capabilities, Completion, Engine, FitResult, GenerationConfig, GenerationStats, Message
from evo_tr.engine.worker import Busy, EngineWorker, OwnedEngine
from evo_tr.errors import EvoError
from evo_tr.models.store import ModelStore, Progress

__all__ = [
    "Artifact", "Busy", "Capabilities", "Completion", "Engine", "EngineWorker", "FitResult", "GenerationConfig", "GenerationStats",
    "Message", "OwnedEngine", "backends", "generation_config", "load_engine",
]
GROUP = "evo_tr.engines"
# The backends this package ships, also found when it runs from a source tree without installed metadata.
BUILTIN = {"llama_cpp": "evo_tr.engine.llama_cpp:LlamaCppEngine", "transformers": "evo_tr.engine.transformers_peft:TransformersEngine",
           "openai": "evo_tr.engine.remote:RemoteEngine"}
log = logging.getLogger(__name__)


def generation_config(settings: Settings, **overrides) -> GenerationConfig:
    """Sampling parameters from settings, with per-call overrides (None means: keep the setting)."""
    values = settings.generation.model_dump()
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "stop" in values:
        values["stop"] = tuple(values["stop"])
    return GenerationConfig(**values)


def backends() -> dict[str, str]:
    """Registered backends: name → "module:Class" (installed entry points override the built-in table)."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def backend_class(name: str) -> type[Engine]:
    table = backends()
    if name not in table:
        raise EvoError(f"Unknown engine backend {name!r}.", f"Set engine.backend to one of: {', '.join(sorted(table))}.")
    module, _, attr = table[name].partition(":")
    try:
        cls = getattr(import_module(module), attr)
    except ImportError as exc:
        raise EvoError(f"The {name} backend cannot be imported: {exc}", "Install what it needs, or choose another engine.backend.") from exc
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise EvoError(f"Entry point {name} = {table[name]} is not an Engine.")
    return cls


def provision(settings: Settings, name: str, kind: str, progress: Progress | None = None) -> Artifact:
    """The artefact a backend asked for: a verified GGUF from the model store (embedded parts are assembled)."""
    if kind == "gguf":
        return Artifact("gguf", path=ModelStore(settings.models_dir).provision(name, progress))
    raise EvoError(f"Models of kind {kind!r} cannot be provisioned here.", "Choose a backend that serves GGUF models.")


def load_engine(settings: Settings, model: str | None = None, progress: Progress | None = None, *, owned: bool = True) -> Engine:
    """Provision and load the configured model on the configured backend; `owned` puts it behind its worker thread."""
    name = model or settings.model
    cls = backend_class(settings.engine.backend)
    engine = cls.from_settings(settings, name, provision(settings, name, cls.artifact_kind, progress), progress)
    return OwnedEngine(engine, settings.engine.max_queue) if owned else engine
