"""The Engine contract every inference backend implements (llama.cpp, transformers + PEFT; remote servers later).

A backend is one module with one class: it loads a base model (`from_settings`), tokenizes and renders
prompts, streams an answer (`chat_stream`), and attaches LoRA experts given as the registry's versions.
What it can and cannot do is said by its `capabilities` flags, which callers check instead of assuming
llama.cpp. Backends register in the entry-point group `evo_tr.engines` (see engine/__init__.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from evo_tr.config import GenerationSettings
from evo_tr.messages import Message, Role  # noqa: F401 (re-exported: engines speak messages)
from evo_tr.prompt import FitResult  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from evo_tr.config import Settings
    from evo_tr.models.store import Progress

_GEN = GenerationSettings()  # every sampling default is defined once, in config.py


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling parameters for one request (defaults: config.GenerationSettings)."""

    max_tokens: int = _GEN.max_tokens
    temperature: float = _GEN.temperature
    top_p: float = _GEN.top_p
    top_k: int = _GEN.top_k
    repeat_penalty: float = _GEN.repeat_penalty
    seed: int = _GEN.seed
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; callers check these instead of the backend's type."""

    streaming: bool = True  # answers arrive piece by piece
    lora_hot_swap: bool = False  # several adapters on one loaded base, chosen per request
    adapter_scale: bool = False  # an adapter can be applied at a scale other than 1
    kv_snapshots: bool = False  # a conversation's KV state is kept per (session, expert) between requests
    local_tokenizer: bool = True  # tokenize/render run here, without a round trip
    logits: bool = False  # last_logits() for numerical checks


@dataclass(frozen=True)
class Artifact:
    """What a backend needs to load a base model: a GGUF file, a Hugging Face folder, or a server URL."""

    kind: str  # "gguf" | "hf" | "url"
    path: Path | None = None
    url: str | None = None


class AdapterLike(Protocol):
    """A registered adapter version (experts.registry.AdapterVersion): what backends need of it."""

    expert: str
    scale: float

    @property
    def gguf(self) -> Path: ...

    @property
    def peft(self) -> Path: ...


@dataclass
class GenerationStats:
    """Measured facts about one answer, filled in while it streams."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    finish_reason: str | None = None
    adapter: str | None = None
    queued_s: float | None = None  # waiting for the engine owner (worker) before generation began
    handoff_s: float | None = None  # submit → the worker's first event back on the caller's thread
    pieces_after_cancel: int | None = None  # what the worker still produced once the request was cancelled

    @property
    def decode_tok_s(self) -> float | None:
        if self.ttft_s is None or self.completion_tokens < 2:
            return None
        decode_time = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / decode_time if decode_time > 0 else None


@dataclass
class Completion:
    """A streaming answer: iterate for text pieces; `stats` is complete once iteration ends."""

    chunks: Iterator[str]
    stats: GenerationStats = field(default_factory=GenerationStats)

    def __iter__(self) -> Iterator[str]:
        return self.chunks

    def close(self) -> None:
        """Stop generating (e.g. on Ctrl-C); the text so far stays valid."""
        close = getattr(self.chunks, "close", None)
        if close:
            close()
        if self.stats.finish_reason is None:
            self.stats.finish_reason = "interrupted"

    def text(self) -> str:
        return "".join(self)


class Engine(ABC):
    """One loaded base model. Adapters (LoRA experts) are attached by name and chosen per request."""

    name: ClassVar[str] = "engine"
    capabilities: ClassVar[Capabilities] = Capabilities()
    artifact_kind: ClassVar[str] = "gguf"  # what provisioning must hand `from_settings`
    model_name: str = ""

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings, model: str, artifact: Artifact, progress: Progress | None = None) -> Engine:
        """Load `model` (its artifact already provisioned) with the engine settings."""

    @property
    @abstractmethod
    def n_ctx(self) -> int: ...

    @abstractmethod
    def tokenize(self, text: str) -> list[int]: ...

    @abstractmethod
    def detokenize(self, tokens: Sequence[int]) -> str: ...

    @abstractmethod
    def render(self, messages: Sequence[Message]) -> str:
        """The exact prompt text the model sees, chat template applied."""

    @abstractmethod
    def chat_stream(
        self, messages: Sequence[Message], config: GenerationConfig, *, adapter: str | None = None, cache_key: str | None = None,
    ) -> Completion:
        """Stream an answer; `adapter` picks an attached expert (None: the base), `cache_key` (a session id) lets a
        backend with kv_snapshots keep that conversation's KV state apart from others'."""

    # -- adapters (backends with lora_hot_swap) ----------------------------------------------------
    def attach_adapter(self, version: AdapterLike) -> None:
        """Load a registered adapter version next to the base, under its expert's name."""
        from evo_tr.errors import EvoError

        raise EvoError(f"The {self.name} backend cannot load LoRA adapters.", "Use engine.backend = \"llama_cpp\" to serve experts.")

    def detach_adapter(self, name: str) -> None:
        """Unload an expert's adapter (requests for it then fail; the router falls back to the base)."""

    def adapters(self) -> list[str]:
        """Names of attached adapters; backends without LoRA support have none."""
        return []

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget cached prompt state, so the next request evaluates from scratch."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free native resources."""

    def describe(self) -> dict[str, str]:
        """Backend name and library versions of a loaded engine."""
        return {"backend": self.name}

    @classmethod
    def probe(cls) -> str:
        """Without loading a model: whether the backend's libraries import, and their versions (`evo doctor`)."""
        return "importable"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def count_messages(self, messages: Sequence[Message]) -> int:
        return self.count_tokens(self.render(messages))
