"""transformers + PEFT backend: the same base model in torch, LoRA experts as PEFT adapters.

Slow on this CPU (SmolLM2-135M in fp32 decodes at a few dozen tokens per second, Qwen-0.5B at about 7)
but real, and the natural backend on CUDA or MPS; it also serves training's exact numerics. The base is
the served GGUF dequantised by transformers once and cached as safetensors, the same files `evo train`
uses, so an adapter trained here runs here unconverted. No KV snapshots: each request evaluates its
prompt from scratch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from evo_tr.config import Settings
from evo_tr.engine.base import AdapterLike, Artifact, Capabilities, Completion, Engine, GenerationConfig, GenerationStats, Message
from evo_tr.errors import EvoError

log = logging.getLogger(__name__)
CACHE_ARG = "cache"  # transformers 5.x renamed past_key_values; _cache_of reads either


def _cache_of(output):
    return output["cache"] if "cache" in output else output.past_key_values


def torch_base_dir(settings: Settings, model_name: str, sha256: str) -> Path:
    return settings.home / "torch" / f"{model_name}-{sha256[:12]}"


def hf_base_dir(settings: Settings, model_name: str, gguf_path: Path, sha256: str, say: Callable[[str], None] = lambda _: None) -> Path:
    """The served GGUF as an HF folder (safetensors + tokenizer + chat template), converted once: what vLLM loads as
    `--model` (`evo models hf`), the same folder `load_torch_base` caches and loads."""
    folder = torch_base_dir(settings, model_name, sha256)
    if not (folder / "config.json").is_file():
        load_torch_base(settings, model_name, gguf_path, sha256, say)
    return folder


def load_torch_base(settings: Settings, model_name: str, gguf_path: Path, sha256: str, say: Callable[[str], None] = lambda _: None):
    """The served GGUF, dequantised by transformers once and cached as safetensors (~1 s to reload)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = torch_base_dir(settings, model_name, sha256)
    if not (cache / "config.json").is_file():
        say(f"converting {gguf_path.name} to a torch model (once; cached in {cache})")
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained while it carries the gguf quantizer marker.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = cache.with_name(cache.name + ".partial")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.replace(cache)
        return model, tok
    return AutoModelForCausalLM.from_pretrained(cache, dtype=torch.float32), AutoTokenizer.from_pretrained(cache)


class TransformersEngine(Engine):
    """See the module docstring."""

    name = "transformers"
    capabilities = Capabilities(streaming=True, lora_hot_swap=True, adapter_scale=True, kv_snapshots=False, local_tokenizer=True, logits=True)
    artifact_kind = "gguf"

    @classmethod
    def from_settings(cls, settings: Settings, model: str, artifact: Artifact, progress=None) -> TransformersEngine:
        from evo_tr.models.store import ModelStore

        sha = ModelStore(settings.models_dir).registry.get(model).sha256 or ""
        torch_model, tokenizer = load_torch_base(settings, model, artifact.path, sha)
        return cls(torch_model, tokenizer, n_ctx=settings.engine.n_ctx, n_threads=settings.engine.n_threads_batch, model_name=model)

    def __init__(self, model, tokenizer, *, n_ctx: int, n_threads: int = 2, model_name: str = "") -> None:
        import torch

        torch.set_num_threads(n_threads)
        self.base = model.eval()
        self.model = self.base  # becomes a PeftModel once an adapter is attached
        self.tok = tokenizer
        self.model_name = model_name
        limit = getattr(model.config, "max_position_embeddings", n_ctx) or n_ctx
        self._n_ctx = min(n_ctx, int(limit))
        self._adapters: dict[str, float] = {}
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        self._eos = {t for t in (tokenizer.eos_token_id, *(gen_eos if isinstance(gen_eos, list) else [gen_eos])) if t is not None}
        self._running = 0
        self.max_concurrent_generations = 0

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def tokenize(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.tok.decode(list(tokens), skip_special_tokens=False)

    def render(self, messages: Sequence[Message]) -> str:
        return self.tok.apply_chat_template([m.as_dict() for m in messages], tokenize=False, add_generation_prompt=True)

    # -- adapters ------------------------------------------------------------------------------------
    def attach_adapter(self, version: AdapterLike) -> None:
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer

        name = version.expert
        if not Path(version.peft).is_dir():
            raise EvoError(f"Adapter {name!r} has no PEFT folder at {version.peft}.", "Re-train it with `evo train`.")
        if name in self._adapters:
            self.detach_adapter(name)
        try:
            if self.model is self.base:
                self.model = PeftModel.from_pretrained(self.base, str(version.peft), adapter_name=name).eval()
            else:
                self.model.load_adapter(str(version.peft), adapter_name=name)
        except (ValueError, OSError, RuntimeError, KeyError) as exc:
            raise EvoError(f"PEFT could not load adapter {name!r} from {version.peft}: {exc}",
                           "It may be made for another base model; `evo adapters rollback` or re-train it.") from exc
        for module in self.model.modules():
            if isinstance(module, LoraLayer) and name in module.scaling:
                module.set_scale(name, float(version.scale))
        self._adapters[name] = float(version.scale)

    def detach_adapter(self, name: str) -> None:
        if name not in self._adapters:
            return
        del self._adapters[name]
        if not self._adapters:  # the last one: back to the plain base, LoRA layers taken out of the modules
            self.base = self.model.unload()
            self.model = self.base.eval()
            return
        self.model.set_adapter(next(iter(self._adapters)))  # PEFT needs a live active adapter before deleting
        self.model.delete_adapter(name)

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    # -- generation ------------------------------------------------------------------------------------
    def chat_stream(self, messages: Sequence[Message], config: GenerationConfig, *, adapter: str | None = None,
                    cache_key: str | None = None) -> Completion:
        if adapter is not None and adapter not in self._adapters:
            raise EvoError(f"Adapter {adapter!r} is not attached to this engine.", "See `evo adapters list`.")
        tokens = self.tokenize(self.render(messages))
        if len(tokens) + 1 > self.n_ctx:
            raise EvoError(f"Prompt has {len(tokens)} tokens, the context window is {self.n_ctx}.",
                           "Fit the prompt before generating, or raise engine.n_ctx.")
        stats = GenerationStats(prompt_tokens=len(tokens), adapter=adapter)
        return Completion(self._generate(tokens, config, stats, adapter), stats)

    def _forward(self, adapter: str | None):
        """The model to call for this request: the adapter selected, or the base with every adapter off."""
        import contextlib

        if self.model is self.base:
            return contextlib.nullcontext()
        if adapter is None:
            return self.model.disable_adapter()
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    def _generate(self, tokens: list[int], config: GenerationConfig, stats: GenerationStats, adapter: str | None) -> Iterator[str]:
        import torch

        self._running += 1
        self.max_concurrent_generations = max(self.max_concurrent_generations, self._running)
        start = time.perf_counter()
        stats.finish_reason = None
        generator = torch.Generator().manual_seed(config.seed) if config.seed >= 0 else None
        max_new = min(config.max_tokens, self.n_ctx - len(tokens))
        holdback = max((len(s) for s in config.stop), default=1) - 1
        seen = torch.tensor(tokens, dtype=torch.long)
        out_ids: list[int] = []
        emitted = ""
        cut = False  # ended at a stop string: what follows it is never shown
        try:
            with torch.no_grad(), self._forward(adapter):
                result = self.model(torch.tensor([tokens]), use_cache=True)
                while True:
                    logits = result.logits[0, -1].float()
                    token = _sample(logits, seen, config, generator)
                    if stats.ttft_s is None:
                        stats.ttft_s = time.perf_counter() - start
                    if token in self._eos:
                        stats.finish_reason = "stop"
                        break
                    stats.completion_tokens += 1
                    out_ids.append(token)
                    seen = torch.cat([seen, torch.tensor([token])])
                    text = self.tok.decode(out_ids, skip_special_tokens=True)
                    if text.endswith("\ufffd"):  # a multi-byte character still incomplete
                        text = text[:-1]
                    hit = next((s for s in config.stop if s in text), None)
                    if hit is not None:
                        piece = text[: text.index(hit)][len(emitted) :]
                        if piece:
                            yield piece
                        emitted += piece
                        stats.finish_reason, cut = "stop", True
                        break
                    ready = len(text) - holdback
                    if ready > len(emitted):
                        yield text[len(emitted) : ready]
                        emitted = text[:ready]
                    if stats.completion_tokens >= max_new:
                        stats.finish_reason = "length"
                        break
                    result = self.model(torch.tensor([[token]]), **{CACHE_ARG: _cache_of(result)}, use_cache=True)
            rest = self.tok.decode(out_ids, skip_special_tokens=True)[len(emitted) :]
            if rest and not cut:
                yield rest
        finally:
            self._running -= 1
            stats.total_s = time.perf_counter() - start
            if stats.finish_reason is None:
                stats.finish_reason = "interrupted"

    def last_logits(self, messages: Sequence[Message], *, adapter: str | None = None):
        import torch

        tokens = self.tokenize(self.render(messages))
        with torch.no_grad(), self._forward(adapter):
            return self.model(torch.tensor([tokens])).logits[0, -1].float().numpy().copy()

    @classmethod
    def probe(cls) -> str:
        import peft
        import torch
        import transformers

        return f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__} importable"

    def describe(self) -> dict[str, str]:
        import torch
        import transformers

        return {"backend": self.name, "torch": torch.__version__, "transformers": transformers.__version__}


def _sample(logits, seen, config: GenerationConfig, generator) -> int:
    """Greedy at temperature 0; else repeat penalty, temperature, top-k, top-p, as llama.cpp orders them."""
    import torch

    if config.repeat_penalty != 1.0 and len(seen):
        prev = logits[seen]
        logits[seen] = torch.where(prev > 0, prev / config.repeat_penalty, prev * config.repeat_penalty)
    if config.temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / config.temperature
    if config.top_k > 0:
        kth = torch.topk(logits, min(config.top_k, logits.numel())).values[-1]
        logits = torch.where(logits < kth, torch.full_like(logits, float("-inf")), logits)
    probs = torch.softmax(logits, dim=-1)
    if config.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < config.top_p
        mask = torch.zeros_like(probs, dtype=torch.bool)
        mask[order[keep]] = True
        probs = torch.where(mask, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))
