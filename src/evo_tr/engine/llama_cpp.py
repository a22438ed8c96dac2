"""llama.cpp backend: one GGUF base model in-process, streamed token by token, LoRA experts hot-swapped.

The only module that imports llama_cpp (bench and doctor reach it through `raw_llama()` and `describe()`).
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

from evo_tr.config import EngineSettings
from evo_tr.engine.base import AdapterLike, Artifact, Capabilities, Completion, Engine, GenerationConfig, GenerationStats, Message
from evo_tr.errors import EvoError, ModelIntegrityError

# OpenMP spin-waiting collapses throughput when another process uses a core; must be set before
# libllama (and its OpenMP runtime) is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

log = logging.getLogger(__name__)

GENERIC_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


_DEFAULTS = EngineSettings()


def _token_text(llm, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")


def chat_formatter(llm):
    """The GGUF's own chat template (ChatML when it has none), shared with the remote backend's local tokenizer."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template") or GENERIC_CHATML
    return Jinja2ChatFormatter(template=template, eos_token=_token_text(llm, llm.token_eos()), bos_token=_token_text(llm, llm.token_bos()))


class LlamaCppEngine(Engine):
    """Serves one GGUF through llama-cpp-python; prompt-prefix KV reuse comes from Llama.generate.

    KV state is kept per (conversation, expert): a request with another `cache_key` or adapter saves the
    current state (the cells in use, not the whole buffer) and restores the target's, or starts from
    scratch when it has none; so a conversation's next turn evaluates only its new tokens however many
    others ran in between, and is computed exactly as if it had run alone. At most
    `engine.kv_snapshots` states are kept (least recently used dropped).
    """

    name = "llama_cpp"
    capabilities = Capabilities(streaming=True, lora_hot_swap=True, adapter_scale=True, kv_snapshots=True, local_tokenizer=True, logits=True)
    artifact_kind = "gguf"

    @classmethod
    def from_settings(cls, settings, model: str, artifact: Artifact, progress=None) -> LlamaCppEngine:
        cfg = settings.engine
        return cls(artifact.path, n_ctx=cfg.n_ctx, n_threads=cfg.n_threads, n_threads_batch=cfg.n_threads_batch, n_batch=cfg.n_batch,
                   kv_snapshots=cfg.kv_snapshots, model_name=model)

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = _DEFAULTS.n_ctx,
        n_threads: int = _DEFAULTS.n_threads,
        n_threads_batch: int = _DEFAULTS.n_threads_batch,
        n_batch: int = _DEFAULTS.n_batch,
        kv_snapshots: int = _DEFAULTS.kv_snapshots,
        model_name: str | None = None,
    ) -> None:
        import llama_cpp

        self.model_path = Path(model_path)
        self.model_name = model_name or self.model_path.stem
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads_batch,
                n_batch=n_batch,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelIntegrityError(
                f"llama.cpp could not load {self.model_path}: {exc}",
                "The file may be truncated or not a supported GGUF; re-run `evo models pull`.",
            ) from exc
        self._llama_cpp = llama_cpp
        self._n_threads = n_threads
        self._adapters: dict[str, tuple[object, float]] = {}  # name → (llama_adapter_lora_p freed with the model, LoRA scale)
        self._active: str | None = None
        self._key: tuple[str | None, str | None] = (None, None)  # (conversation, expert) whose KV is in the context
        self._max_states = kv_snapshots
        self._states: OrderedDict[tuple, object] = OrderedDict()  # (conversation, expert) → KV snapshot, LRU
        self._buffers: dict[tuple, ctypes.Array] = {}  # snapshot memory per key, reused: no zero-fill per switch
        # Counted here, inside the backend: how many generations run at once (the engine owner keeps it at 1).
        self._running = 0
        self.max_concurrent_generations = 0
        self._count_lock = threading.Lock()
        self._formatter = chat_formatter(self.llm)

    @property
    def n_ctx(self) -> int:
        return self.llm.n_ctx()

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def render(self, messages: Sequence[Message]) -> str:
        return self._formatter(messages=[m.as_dict() for m in messages]).prompt

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """Tokens of the rendered prompt, with BOS when the model wants one."""
        return self.llm.tokenize(self.render(messages).encode("utf-8"), add_bos=True, special=True)

    # -- LoRA adapters ----------------------------------------------------------------------
    def attach_adapter(self, version: AdapterLike) -> None:
        """Load a version's GGUF LoRA next to the base (a few ms); it is applied, times its scale, only to requests that ask for it."""
        name, path = version.expert, version.gguf
        ptr = self._llama_cpp.llama_adapter_lora_init(self.llm._model.model, str(path).encode("utf-8"))
        if not ptr:
            raise ModelIntegrityError(
                f"llama.cpp could not load adapter {name!r} from {path}.",
                "It may be corrupt or made for another base model; re-export it or `evo adapters rollback`.",
            )
        if self._active == name:
            self.use_adapter(None)
        self._adapters[name] = (ptr, float(version.scale))
        self._drop_states(name)

    def detach_adapter(self, name: str) -> None:
        """Stop serving an expert; its pointer is freed with the model (llama.cpp has no per-adapter free that is safe here)."""
        if name not in self._adapters:
            return
        if self._active == name:
            self.use_adapter(None)
        del self._adapters[name]
        self._drop_states(name)

    def _drop_states(self, expert: str) -> None:
        for key in [k for k in self._states if k[1] == expert]:
            self._states.pop(key)
            self._buffers.pop(key, None)

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    @property
    def active_adapter(self) -> str | None:
        return self._active

    def use_adapter(self, name: str | None, cache_key: str | None = None) -> None:
        """Select the adapter (and conversation) for the next requests; KV entries computed under another adapter
        or for another conversation are never reused. The outgoing state is kept (see the class docstring)."""
        key = (cache_key, name)
        if key == self._key:
            return
        if name is not None and name not in self._adapters:
            raise EvoError(f"Adapter {name!r} is not attached to this engine.", "See `evo adapters list`.")
        if self.llm.n_tokens:
            self._save_state(self._key)
        if name != self._active:
            self.set_lora(name)
            self._active = name
        state = self._states.pop(key, None)
        if state is not None:
            self._restore(state)
        else:
            self.llm.reset()
        self._key = key

    def _save_state(self, key: tuple) -> None:
        self._states[key] = self._snapshot(key)
        self._states.move_to_end(key)
        while len(self._states) > self._max_states:
            old, _ = self._states.popitem(last=False)
            self._buffers.pop(old, None)

    def set_lora(self, name: str | None) -> None:
        """The bare llama.cpp switch (no KV handling): use_adapter builds on it; the bench times it alone."""
        lib = self._llama_cpp
        if name is None:
            rc = lib.llama_set_adapters_lora(self.llm._ctx.ctx, None, 0, None)
        else:
            ptr, scale = self._adapters[name]
            ptrs = (lib.llama_adapter_lora_p_ctypes * 1)(ptr)
            rc = lib.llama_set_adapters_lora(self.llm._ctx.ctx, ptrs, 1, (ctypes.c_float * 1)(scale))
        if rc != 0:
            raise EvoError(f"llama.cpp refused to switch to adapter {name!r} (code {rc}).")

    def _snapshot(self, key: tuple) -> tuple[object, int, list[int]]:
        """The KV cells of sequence 0 actually in use (not the whole n_ctx buffer) and their tokens."""
        lib, ctx = self._llama_cpp, self.llm._ctx.ctx
        size = lib.llama_state_seq_get_size(ctx, 0)
        buf = self._buffers.get(key)  # free to overwrite: this key's last snapshot was restored or dropped
        if buf is None or len(buf) < size:
            buf = self._buffers[key] = (ctypes.c_uint8 * size)()
        written = lib.llama_state_seq_get_data(ctx, buf, size, 0)
        n = self.llm.n_tokens
        return buf, written, list(self.llm.input_ids[:n])

    def _restore(self, state: tuple[object, int, list[int]]) -> None:
        """Put an expert's KV cells back so its next turn only evaluates the new tokens."""
        buf, size, tokens = state
        lib, ctx = self._llama_cpp, self.llm._ctx.ctx
        self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        if lib.llama_state_seq_set_data(ctx, buf, size, 0) == 0:
            self.llm.reset()  # could not restore: evaluate from scratch rather than reuse anything
            return
        self.llm.input_ids[: len(tokens)] = tokens
        self.llm.n_tokens = len(tokens)

    def chat_stream(self, messages: Sequence[Message], config: GenerationConfig, *, adapter: str | None = None,
                    cache_key: str | None = None) -> Completion:
        self.use_adapter(adapter, cache_key)
        tokens = self.prompt_tokens(messages)
        if len(tokens) + 1 > self.n_ctx:
            raise EvoError(
                f"Prompt has {len(tokens)} tokens, the context window is {self.n_ctx}.",
                "Use Engine.fit() before generating, or raise engine.n_ctx.",
            )
        stats = GenerationStats(prompt_tokens=len(tokens), adapter=adapter)
        return Completion(self._generate(tokens, config, stats), stats)

    def _generate(self, tokens: list[int], config: GenerationConfig, stats: GenerationStats) -> Iterator[str]:
        with self._count_lock:
            self._running += 1
            self.max_concurrent_generations = max(self.max_concurrent_generations, self._running)
        try:
            yield from self._decode(tokens, config, stats)
        finally:
            with self._count_lock:
                self._running -= 1

    def _decode(self, tokens: list[int], config: GenerationConfig, stats: GenerationStats) -> Iterator[str]:
        llm = self.llm
        if config.seed >= 0:
            llm.set_seed(config.seed)
        max_new = min(config.max_tokens, self.n_ctx - len(tokens))
        vocab = llm._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        holdback = max((len(s) for s in config.stop), default=1) - 1
        pending = ""
        start = time.perf_counter()
        stats.finish_reason = None
        generator = llm.generate(
            tokens,
            top_k=config.top_k,
            top_p=config.top_p,
            temp=config.temperature,
            repeat_penalty=config.repeat_penalty,
        )
        try:
            for token in generator:
                if stats.ttft_s is None:
                    stats.ttft_s = time.perf_counter() - start
                if self._llama_cpp.llama_vocab_is_eog(vocab, token):
                    stats.finish_reason = "stop"
                    break
                stats.completion_tokens += 1
                pending += decoder.decode(llm.detokenize([token]))
                hit = next((s for s in config.stop if s in pending), None)
                if hit is not None:
                    pending = pending[: pending.index(hit)]
                    stats.finish_reason = "stop"
                    break
                if len(pending) > holdback:
                    cut = len(pending) - holdback
                    yield pending[:cut]
                    pending = pending[cut:]
                if stats.completion_tokens >= max_new:
                    stats.finish_reason = "length"
                    break
            pending += decoder.decode(b"", final=True)
            if pending:
                yield pending
        finally:
            generator.close()
            stats.total_s = time.perf_counter() - start
            if stats.finish_reason is None:
                stats.finish_reason = "interrupted"

    def reset(self) -> None:
        """Forget the cached prompt prefixes (all conversations and experts), so the next request evaluates from scratch."""
        self.llm.reset()
        self._states.clear()
        self._buffers.clear()
        self._key = (None, self._active)

    @classmethod
    def probe(cls) -> str:
        import llama_cpp

        return f"llama_cpp {getattr(llama_cpp, '__version__', '?')} importable"

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "llama_cpp": getattr(self._llama_cpp, "__version__", "?"), "model": str(self.model_path)}

    def raw_llama(self, n_ctx: int, n_threads_batch: int, n_batch: int):
        """A plain llama_cpp.Llama on the same GGUF and threads: the bench's baseline."""
        return self._llama_cpp.Llama(model_path=str(self.model_path), n_ctx=n_ctx, n_threads=self._n_threads,
                                     n_threads_batch=n_threads_batch, n_batch=n_batch, verbose=False)

    def last_logits(self, messages: Sequence[Message], *, adapter: str | None = None):
        """Next-token logits after the rendered prompt (numpy, vocab-sized): for numerical adapter checks."""
        import numpy as np

        self.use_adapter(adapter, "logits")
        tokens = self.prompt_tokens(messages)
        self.llm.reset()
        self.llm.eval(tokens)
        ptr = self._llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),)).copy()
        self.llm.reset()  # a throwaway state: nothing to keep for the next conversation
        return logits

    def close(self) -> None:
        self.llm.close()
