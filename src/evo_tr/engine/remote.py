"""Remote backend: the model runs in an OpenAI-compatible server (vLLM, LoRAX, llama.cpp's server, another `evo serve`).

EVO-TR's router, memory, prompt assembly and night loop stay here; only generation crosses the network, through
`POST {engine.url}/chat/completions` with `stream: true`. The expert is chosen per request by the `model` field,
the convention vLLM and LoRAX use for LoRA modules (`model: "python_coder"`), or `evo-tr/EXPERT` when the remote
is another `evo serve` (`engine.lora_naming = "evo"`; such a remote is asked for the raw engine, see
serve/openai_api.py: no routing, memory or system prompt of its own, so its answer is the in-process one).

The base model's tokenizer and chat template are loaded locally from the same GGUF with llama.cpp in vocab-only
mode (a few MB of memory, ~0.1 s), so prompt budgeting never makes a round trip. What a remote cannot do is said
by `capabilities`: no KV snapshots (the server's own prefix cache is its business), no per-adapter scale, no logits.
Connection errors are retried with backoff (`engine.retries`), never an answer that already started; a remote that
is down is a clear EvoError naming the URL, within `engine.connect_timeout_s`, never a hang.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from evo_tr.engine.base import AdapterLike, Artifact, Capabilities, Completion, Engine, GenerationConfig, GenerationStats, Message
from evo_tr.errors import EvoError, RemoteEngineError

log = logging.getLogger(__name__)

RAW_HEADER = "X-Evo-Raw"  # asks a remote `evo serve` for its engine alone (the local side did routing and memory)


def api_key_from_settings(cfg) -> str | None:
    """engine.api_key, else the first line of engine.api_key_file, else none (one place for the answer and publish paths)."""
    key = cfg.api_key.get_secret_value() if cfg.api_key is not None else None
    if key is None and cfg.api_key_file is not None:
        try:
            key = Path(cfg.api_key_file).expanduser().read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise EvoError(f"Cannot read engine.api_key_file {cfg.api_key_file}: {exc.strerror or exc}.",
                           "Fix the path or set EVO_ENGINE__API_KEY.") from exc
    return key


class RemoteEngine(Engine):
    name = "openai"
    capabilities = Capabilities(streaming=True, lora_hot_swap=True, adapter_scale=False, kv_snapshots=False, local_tokenizer=True, logits=False)
    artifact_kind = "gguf"  # the base's GGUF, for the local tokenizer and chat template (vocab only)

    @classmethod
    def from_settings(cls, settings, model: str, artifact: Artifact, progress=None) -> RemoteEngine:
        cfg = settings.engine
        if not cfg.url:
            raise EvoError("engine.backend is \"openai\" but engine.url is not set.",
                           "Set it to the server's API root, e.g. EVO_ENGINE__URL=http://127.0.0.1:8001/v1 (vLLM, llama.cpp's server, "
                           "or another `evo serve`).")
        return cls(artifact.path, url=cfg.url, api_key=api_key_from_settings(cfg), model_name=model, remote_model=cfg.remote_model or model,
                   lora_naming=cfg.lora_naming, n_ctx=cfg.n_ctx, connect_timeout_s=cfg.connect_timeout_s, timeout_s=cfg.timeout_s,
                   retries=cfg.retries)

    def __init__(self, model_path: Path, *, url: str, api_key: str | None = None, model_name: str = "", remote_model: str = "",
                 lora_naming: str = "plain", n_ctx: int = 4096, connect_timeout_s: float = 5.0, timeout_s: float = 300.0,
                 retries: int = 2) -> None:
        import httpx
        import llama_cpp

        from evo_tr.engine.llama_cpp import chat_formatter

        self.url = url.rstrip("/")
        self.model_name = model_name or Path(model_path).stem
        self.remote_model = remote_model or self.model_name
        self.lora_naming = lora_naming
        self.retries = retries
        self._n_ctx = n_ctx
        self._vocab = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
        self._formatter = chat_formatter(self._vocab)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers,
                                  timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))
        self._adapters: list[str] = []
        self.served = self._served_models()  # a remote that is down fails here, clearly, not at the first answer

    # -- the remote ---------------------------------------------------------------------------
    def _retrying(self, call):
        """`call()` with retries on connection errors only (nothing was sent yet, so retrying is safe)."""
        import httpx

        for attempt in range(self.retries + 1):
            try:
                return call()
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == self.retries:
                    raise self._down(exc) from exc
                time.sleep(0.25 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _down(self, exc: Exception) -> RemoteEngineError:
        return RemoteEngineError(f"The remote engine at {self.url} is unreachable ({type(exc).__name__}: {exc}).",
                        "Start the server (vLLM, llama.cpp's server or `evo serve`), check engine.url, "
                        "or set engine.backend = \"llama_cpp\" to run the model here.")

    def _served_models(self) -> list[str]:
        r = self._retrying(lambda: self._http.get("/models"))
        if r.status_code == 401:
            raise EvoError(f"The remote engine at {self.url} refused the key (HTTP 401).", "Set engine.api_key (EVO_ENGINE__API_KEY) or engine.api_key_file.")
        if r.status_code != 200:
            raise EvoError(f"The remote engine at {self.url} answered GET /models with HTTP {r.status_code}.",
                           "Is engine.url the server's API root (ending in /v1)?")
        try:
            return [m["id"] for m in r.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EvoError(f"The remote engine at {self.url} sent a /models list that is not OpenAI-shaped: {exc}.") from exc

    def model_for(self, adapter: str | None) -> str:
        """The `model` field that selects the base or an expert on the remote."""
        if self.lora_naming == "evo":
            return f"evo-tr/{adapter or 'base'}"
        return adapter or self.remote_model

    # -- tokens and prompts (local) -------------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def tokenize(self, text: str) -> list[int]:
        return self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._vocab.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def render(self, messages: Sequence[Message]) -> str:
        return self._formatter(messages=[m.as_dict() for m in messages]).prompt

    # -- adapters: served by the remote, selected per request -------------------------------------
    def attach_adapter(self, version: AdapterLike) -> None:
        name = self.model_for(version.expert)
        if name not in self.served:
            self.served = self._served_models()
        if name not in self.served:
            raise EvoError(f"The remote engine at {self.url} does not serve {name!r} (it serves: {', '.join(self.served) or 'nothing'}).",
                           f"Publish it there: `evo adapters publish {version.expert}` (vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), "
                           f"or start the server with --lora-modules {version.expert}=PEFT_DIR (`evo adapters publish --print`).")
        if version.expert not in self._adapters:
            self._adapters.append(version.expert)

    def detach_adapter(self, name: str) -> None:
        if name in self._adapters:
            self._adapters.remove(name)

    def adapters(self) -> list[str]:
        return list(self._adapters)

    # -- generation -----------------------------------------------------------------------------
    def chat_stream(self, messages: Sequence[Message], config: GenerationConfig, *, adapter: str | None = None,
                    cache_key: str | None = None) -> Completion:
        if adapter is not None and adapter not in self._adapters:
            raise EvoError(f"No adapter {adapter!r} attached to the remote engine.", "See `evo adapters list`.")
        body = {"model": self.model_for(adapter), "messages": [m.as_dict() for m in messages], "stream": True,
                "max_tokens": config.max_tokens, "temperature": config.temperature, "top_p": config.top_p,
                "stream_options": {"include_usage": True}}
        if config.seed >= 0:
            body["seed"] = config.seed
        if config.stop:
            body["stop"] = list(config.stop)
        stats = GenerationStats(prompt_tokens=self.count_messages(messages), adapter=adapter)
        return Completion(self._stream(body, stats), stats)

    def _stream(self, body: dict, stats: GenerationStats) -> Iterator[str]:
        import httpx

        headers = {RAW_HEADER: "1"} if self.lora_naming == "evo" else {}
        start = time.perf_counter()
        stats.finish_reason = None
        pieces = 0
        request = self._http.build_request("POST", "/chat/completions", json=body, headers=headers)
        try:
            resp = self._retrying(lambda: self._http.send(request, stream=True))
            try:
                if resp.status_code != 200:
                    resp.read()
                    raise EvoError(f"The remote engine at {self.url} answered HTTP {resp.status_code}: {error_text(resp)}",
                                   "See the remote server's log.")
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("usage"):
                        stats.prompt_tokens = chunk["usage"].get("prompt_tokens") or stats.prompt_tokens
                        stats.completion_tokens = chunk["usage"].get("completion_tokens") or stats.completion_tokens
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            if stats.ttft_s is None:
                                stats.ttft_s = time.perf_counter() - start
                            pieces += 1
                            yield text
                        if choice.get("finish_reason"):
                            stats.finish_reason = "length" if choice["finish_reason"] == "length" else "stop"
            finally:
                resp.close()
        except httpx.HTTPError as exc:  # the server went away mid-answer: what came so far stays
            raise EvoError(f"The remote engine at {self.url} stopped answering: {type(exc).__name__}: {exc}.",
                           "Check that the server still runs; the answer so far was kept.") from exc
        finally:
            stats.total_s = time.perf_counter() - start
            if not stats.completion_tokens:
                stats.completion_tokens = pieces  # a server without usage in the stream: one piece ≈ one token
            if stats.finish_reason is None:
                stats.finish_reason = "interrupted"

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "url": self.url, "model": self.remote_model, "lora_naming": self.lora_naming}

    @classmethod
    def probe(cls) -> str:
        import httpx

        return f"httpx {httpx.__version__}"

    def close(self) -> None:
        self._http.close()


def error_text(resp) -> str:
    try:
        err = resp.json().get("error")
        return err.get("message", str(err)) if isinstance(err, dict) else str(err or resp.text[:300])
    except ValueError:
        return resp.text[:300]
