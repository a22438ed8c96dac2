"""Settings: one object, read from defaults < TOML file < EVO_* environment variables."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_config_dir, user_data_dir
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from evo_tr.errors import EvoError

APP_NAME = "evo-tr"
ENV_PREFIX = "EVO_"
ENV_NESTED = "__"
CONFIG_FILENAME = "evo.toml"
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
TEST_MODEL = "smollm2-135m-instruct"

DEFAULT_SYSTEM_PROMPT = (
    "Sen EVO-TR'sin: kullanıcının kendi bilgisayarında çalışan, gizliliğe saygılı, "
    "yardımsever bir yapay zekâ asistanısın. Kullanıcı hangi dilde yazarsa o dilde, "
    "kısa ve doğru yanıt ver."
)


def config_file_path() -> Path:
    """The TOML file in force: $EVO_CONFIG, else ./evo.toml, else the user config dir."""
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    local = Path.cwd() / CONFIG_FILENAME
    if local.is_file():
        return local
    return Path(user_config_dir(APP_NAME)) / CONFIG_FILENAME


def default_home() -> Path:
    """Where models, logs and memory live unless EVO_HOME says otherwise."""
    return Path(user_data_dir(APP_NAME))


class EngineSettings(BaseModel):
    """How the inference backend runs; thread defaults were measured on a 2-core box."""

    backend: str = Field("llama_cpp", description="Inference backend (entry point in group evo_tr.engines): llama_cpp, transformers, openai (remote).")
    n_threads: int = Field(1, ge=1, description="Decode threads (1 is fastest on 2 shared cores).")
    n_threads_batch: int = Field(2, ge=1, description="Prompt-evaluation threads.")
    n_ctx: int = Field(4096, ge=256, description="Context window in tokens.")
    n_batch: int = Field(256, ge=16, description="Prompt-evaluation batch size.")
    kv_snapshots: int = Field(16, ge=1, description="Conversations (per expert) whose KV state is kept between their turns.")
    max_queue: int = Field(16, ge=1, description="Requests that may wait for the engine; one more is refused as busy.")
    # The remote backend (engine.backend = "openai"): an OpenAI-compatible server runs the model.
    url: str | None = Field(None, description="Remote engine API root, e.g. http://127.0.0.1:8001/v1 (vLLM, llama.cpp's server, evo serve).")
    api_key: SecretStr | None = Field(None, description="Bearer key for the remote engine (EVO_ENGINE__API_KEY); never shown.")
    api_key_file: Path | None = Field(None, description="File holding the remote engine's key (instead of api_key).")
    remote_model: str | None = Field(None, description="The base model's name on the remote (vLLM --served-model-name); default: the model name.")
    lora_naming: Literal["plain", "evo"] = Field("plain", description="'plain': model = EXPERT (vLLM, LoRAX); 'evo': evo-tr/EXPERT (another evo serve).")
    connect_timeout_s: float = Field(5.0, gt=0, description="How long to wait for the remote engine to accept a connection.")
    timeout_s: float = Field(300.0, gt=0, description="How long one remote answer may take between pieces.")
    retries: int = Field(2, ge=0, le=10, description="Retries (with backoff) when the remote refuses the connection; never once an answer started.")
    publish_adapters: bool = Field(True, description="With a vLLM-style remote (lora_naming 'plain'): activation, rollback and the night's "
                                   "promotion load the version into the server first (its runtime LoRA API).")
    lora_dir: Path | None = Field(None, description="A folder the remote engine's server also reads (NFS, a volume): published PEFT folders are copied there.")
    lora_dir_remote: str | None = Field(None, description="engine.lora_dir as the server's machine mounts it (default: the same path).")


class GenerationSettings(BaseModel):
    """Sampling defaults for every answer."""

    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0)
    repeat_penalty: float = Field(1.1, ge=1.0)
    seed: int = Field(-1, description="-1 picks a random seed per answer.")


DEFAULT_INTENTS = ["general_chat", "turkish_culture", "code_python", "code_debug", "memory_recall"]
DEFAULT_EXPERTS = {
    "general_chat": "tr_chat",
    "turkish_culture": "tr_chat",
    "code_python": "python_coder",
    "code_debug": "python_coder",
    "memory_recall": "base",
}


class RouterSettings(BaseModel):
    """Which intents exist, which expert serves each, and when the router's guess is trusted."""

    intents: list[str] = Field(default_factory=lambda: list(DEFAULT_INTENTS))
    experts: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_EXPERTS), description="intent → expert ('base' = no adapter).")
    threshold: float = Field(0.7, ge=0.0, le=1.0, description="Below this confidence, fall back to general_chat.")
    @field_validator("experts")
    @classmethod
    def _merge_experts(cls, value: dict[str, str]) -> dict[str, str]:
        """A partial [router.experts] table overrides only the intents it names."""
        return {**DEFAULT_EXPERTS, **value}

    C: float = Field(100.0, gt=0, description="Inverse regularisation of the logistic regression.")
    ngram_weight: float = Field(1.0, ge=0, description="Weight of character n-gram features next to the embedding.")
    max_chars: int = Field(600, ge=50, description="Longer messages are cut (head and tail kept) before routing.")
    fast_threshold: float = Field(0.9, ge=0.0, le=1.0, description="n-gram stage answers alone at or above this confidence.")


class MemorySettings(BaseModel):
    """Long-term store (ChromaDB), retrieval for RAG, fact capture and the short-term buffer."""

    backend: Literal["embedded", "http"] = Field("embedded", description="'embedded' = PersistentClient under home; 'http' = a `chroma run` server.")
    host: str = Field("127.0.0.1", description="Chroma server host (backend = 'http').")
    port: int = Field(8000, ge=1, le=65535, description="Chroma server port (backend = 'http').")
    ssl: bool = False
    collection: str = Field("evo_memories", min_length=3, max_length=512)
    enabled: bool = Field(True, description="Retrieve memories into prompts and save turns.")
    top_k: int = Field(3, ge=1, le=50, description="Memories injected per turn at most.")
    # e5 similarities sit in a narrow band (0.80-0.90 for related and unrelated text alike), so a cosine
    # floor alone cannot tell relevance; a memory is injected when it is very close, or close and sharing
    # content words. Measured on the packaged pairs vs 370 router messages: 85% of true pairs pass, 26% of
    # unrelated best matches do (the memory_recall intent skips the lexical test).
    min_similarity: float = Field(0.80, ge=0.0, le=1.0, description="Cosine floor: weaker matches are never injected.")
    relevant_similarity: float = Field(0.87, ge=0.0, le=1.0, description="At or above this cosine a memory counts as relevant on its own.")
    min_overlap: float = Field(0.2, ge=0.0, le=1.0, description="Between the floor and relevant_similarity, share of query stems the memory must contain.")
    relevance_margin: float = Field(0.03, ge=0.0, le=1.0, description="A memory scoring more than this below the best relevant one is left out.")
    lexical_weight: float = Field(0.02, ge=0.0, le=1.0, description="Weight of stem overlap with the query when re-ranking (hybrid search).")
    user_fact_bonus: float = Field(0.01, ge=0.0, le=1.0, description="Re-rank bonus for facts/preferences, penalty for old conversation snippets.")
    rag_max_tokens: int = Field(400, ge=0, description="Token budget of the memory and knowledge block in a prompt (shared).")
    max_query_chars: int = Field(500, ge=50, description="Longer search queries (pasted code, tracebacks) keep head and tail, bounding latency.")
    chunk_chars: int = Field(1000, ge=100, description="Long texts are stored in chunks of about this size.")
    max_text_chars: int = Field(64_000, ge=1000, description="Texts longer than this are refused (import files instead).")
    capture_facts: bool = Field(True, description="Store explicit statements ('Benim adım …', 'Remember that …') at once.")
    save_conversations: bool = Field(True, description="Store every finished turn as a 'conversation' memory.")
    lock_timeout_s: float = Field(3.0, ge=0.0, description="A write waits this long for another process's write lock; chat then queues it, the CLI says busy.")
    buffer_messages: int = Field(20, ge=2, description="Short-term buffer: messages kept.")
    buffer_tokens: int = Field(2048, ge=64, description="Short-term buffer: token limit (active model's tokenizer).")


class KnowledgeSettings(BaseModel):
    """Reference knowledge, kept apart from personal memory: the shipped Turkish pack and the user's documents."""

    enabled: bool = Field(True, description="Retrieve knowledge into prompts.")
    collection: str = Field("evo_knowledge", min_length=3, max_length=512, description="Chroma collection (under $EVO_HOME/knowledge, or on the memory.backend server).")
    pack: bool = Field(True, description="Load and search the shipped Turkish knowledge pack (proverbs, idioms, reference entries).")
    top_k: int = Field(3, ge=1, le=20, description="Knowledge passages injected per turn at most (the token budget is shared with memory).")
    chunk_chars: int = Field(700, ge=200, le=4000, description="Documents are cut into passages of about this many characters.")
    max_file_mb: float = Field(20.0, gt=0, description="Larger files are skipped with a message.")
    skip_pack_for: list[str] = Field(default_factory=lambda: ["code_python", "code_debug", "memory_recall"], description="Intents whose prompts never get pack entries (the user's documents still can).")
    head_coverage: float = Field(0.5, ge=0.0, le=1.0, description="A proverb or idiom needs this share of its own words in the message (unless the message asks for a saying).")
    relevance_margin: float = Field(0.01, ge=0.0, le=1.0, description="A passage scoring more than this below the best relevant one is left out.")
    exact_search_max: int = Field(50_000, ge=0, description="Up to this many passages, search is an exact dot product over vectors held in memory (~0.2 ms at 2,700) instead of a Chroma query (~3-9 ms); 0 always asks Chroma.")


PYTHON_CODER_PROMPT = (
    "Sen EVO-TR'nin Python uzmanısın: kullanıcının kendi bilgisayarında çalışırsın. Çalışan, okunaklı Python "
    "kodu yaz; kodu tek bir ```python bloğunda ver. Kullanıcı hangi dilde yazarsa açıklamayı o dilde, kısa yap."
)
DEFAULT_EXPERT_PROMPTS = {"tr_chat": DEFAULT_SYSTEM_PROMPT, "python_coder": PYTHON_CODER_PROMPT}


class ExpertSettings(BaseModel):
    """Per-expert system prompts (training and chat use the same one); other experts get `system_prompt`."""

    system_prompts: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_EXPERT_PROMPTS), description="expert → system prompt.")
    eval_baseline_cache: bool = Field(True, description="Keep the base's HumanEval outcomes between runs (experts/baseline.py); "
                                      "the code gate then runs only the candidate, plus a few rechecks of the base.")
    eval_baseline_recheck: int = Field(8, ge=1, description="Cached base outcomes run again on every use; any disagreement "
                                       "drops the cache and runs the base on every problem.")

    @field_validator("system_prompts")
    @classmethod
    def _merge_prompts(cls, value: dict[str, str]) -> dict[str, str]:
        """A partial [experts.system_prompts] table overrides only the experts it names."""
        return {**DEFAULT_EXPERT_PROMPTS, **value}


class ChatSettings(BaseModel):
    """The orchestrator: conversation store, memory retries, what the chat shows."""

    verbose: bool = Field(True, description="Show the chosen expert and router confidence after each answer (/verbose toggles).")
    memory_retry_s: float = Field(10.0, ge=0.0, description="After memory failed, wait this long before trying the store again.")
    sessions_listed: int = Field(20, ge=1, description="Sessions shown by /sessions and `evo sessions list`.")
    session_cache: int = Field(64, ge=1, description="Sessions kept in memory; older ones reload from the conversation store when used.")


class NightSettings(BaseModel):
    """What the night run does with the day: extraction, proposals, and when to retrain an expert."""

    llm_extraction: bool = Field(True, description="Also ask the local model to extract facts (output validated as JSON and grounded).")
    extraction_max_tokens: int = Field(160, ge=16, description="Answer limit for one extraction prompt.")
    misroute_confidence: float = Field(0.6, ge=0.0, le=1.0, description="Routes below this confidence are misroute candidates.")
    code_timeout_s: float = Field(10.0, gt=0, description="Sandbox time limit per code block from the day's answers.")
    retrain: bool = Field(True, description="Retrain an expert when enough accepted examples are waiting.")
    retrain_min_examples: int = Field(20, ge=1, description="Accepted new examples an expert needs before it is retrained.")
    retrain_epochs: int = Field(1, ge=1, description="Epochs of a night retrain.")
    retrain_max_steps: int | None = Field(None, ge=1, description="Cap on optimizer steps of a night retrain (None = whole epochs).")
    retrain_lr: float | None = Field(None, gt=0, description="Learning rate of a night retrain (None = the expert's YAML recipe).")
    gate_margin: float = Field(0.005, ge=0.0, description="A candidate must lower held-out loss by this share to be promoted; closer is a tie and the old one stays.")
    gate_min_gain_share: float = Field(0.9, ge=0.0, le=1.0, description="A candidate must keep this share of the active version's prompt gain (how much the question lowers the answer's loss).")
    gate_examples: int = Field(40, ge=4, description="Held-out examples the promotion gate scores.")
    # The code gate (experts/gate.py), pre-registered in issue 26 before any new python_coder candidate was trained.
    code_gate_experts: list[str] = Field(default_factory=lambda: ["python_coder"],
                                         description="Experts promoted by the code gate (Turkish and English HumanEval) instead of held-out loss.")
    code_gate_alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Turkish HumanEval: one-sided exact McNemar p must be below this.")
    code_gate_english_margin: int = Field(3, ge=0, description="English HumanEval: problems lost minus problems gained may be at most this.")
    code_gate_limit: int | None = Field(None, ge=1, description="Problems per set (None = all 164; fewer only for smoke runs).")
    code_gate_workers: int = Field(2, ge=1, description="Engine processes for the gate's HumanEval runs.")


class LogSettings(BaseModel):
    """The JSON-lines application log under $EVO_HOME/logs."""

    max_bytes: int = Field(5_000_000, ge=10_000, description="Rotate the live log at this size.")
    backups: int = Field(5, ge=0, description="Rotated files kept.")
    max_age_days: float = Field(30.0, gt=0, description="Rotated files older than this are deleted.")


API_KEY_ENV = "EVO_API_KEY"  # the server's key; read from the environment only (never from evo.toml, never logged)
# Users of one server (`evo users`, evo_tr.users). The owner is the one user of a server without user keys, of
# EVO_API_KEY and of every CLI command; its id is "", the value every memory, session and turn written before
# users existed carries, so existing stores stay the owner's.
OWNER_ID = ""
OWNER_NAME = "owner"  # how the owner is shown; no user may take this name
USER_NAME_PATTERN = r"^[^\W_][\w-]{0,31}$"  # after Turkish-aware lower-casing: letters (ç ğ ı ö ş ü too), digits, _ and -
USER_KEY_BYTES = 32  # random bytes of a user's key (secrets.token_urlsafe); only its SHA-256 is stored
USER_KEY_PREFIX = "evo-"  # keys read as EVO-TR keys in a config file or a leak scanner


class ServeSettings(BaseModel):
    """`evo serve`: the OpenAI-compatible HTTP API. Loopback only unless an API key is set."""

    host: str = Field("127.0.0.1", description="Address to bind; anything but loopback needs an API key.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    api_key_file: Path | None = Field(None, description="File holding the API key (the EVO_API_KEY environment variable wins).")
    cors_origins: list[str] = Field(default_factory=list, description="Browser origins allowed to call the API (CORS is off when empty).")
    max_body_bytes: int = Field(1_000_000, ge=1_000, description="Larger request bodies get 413 (document uploads: knowledge.max_file_mb).")
    max_messages: int = Field(256, ge=1, description="Messages one chat request may carry.")
    max_message_chars: int = Field(100_000, ge=1, description="Characters one message may carry.")
    max_tokens: int = Field(4096, ge=1, description="Largest max_tokens a request may ask for.")
    max_inputs: int = Field(256, ge=1, description="Texts one embeddings request may carry.")
    request_timeout_s: float = Field(300.0, gt=0, description="A generation running longer is stopped (finish_reason 'length', or 504 before the first token).")
    log_content: bool = Field(False, description="Write message text into the access log (off: only sizes, ids and timings).")


class BenchSettings(BaseModel):
    """How many repetitions `evo bench` takes its medians over."""

    runs: int = Field(5, ge=1)
    decode_tokens: int = Field(64, ge=8)
    memory_size: int = Field(10_000, ge=10, description="Memories in the store while search latency is measured.")
    memory_queries: int = Field(200, ge=5, description="Searches timed for the memory percentiles.")
    turn_memory_size: int = Field(1000, ge=10, description="Memories in the store while turn overhead is measured (a personal store).")
    followup_tokens: int = Field(48, ge=4, description="Answer length per turn in the follow-up TTFT session (it grows the history).")
    knowledge_chunks: int = Field(1000, ge=20, description="Document chunks next to the pack while knowledge search latency is measured.")
    knowledge_queries: int = Field(200, ge=5, description="Searches timed for the knowledge percentiles.")
    vllm_python: Path | None = Field(None, description="Python of vLLM's virtualenv for the vllm section (default: ./.venv-vllm/bin/python, made by `make vllm`).")
    concurrent_streams: int = Field(4, ge=2, le=32, description="Simultaneous requests in the remote servers' concurrency figures.")


class Settings(BaseSettings):
    """Everything configurable, in one place."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED,
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(default_factory=default_home, description="Data dir (models, logs, memory).")
    model: str = Field(DEFAULT_MODEL, description="Registry name of the chat model.")
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    engine: EngineSettings = EngineSettings()
    generation: GenerationSettings = GenerationSettings()
    router: RouterSettings = RouterSettings()
    memory: MemorySettings = MemorySettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    experts: ExpertSettings = ExpertSettings()
    chat: ChatSettings = ChatSettings()
    logs: LogSettings = LogSettings()
    night: NightSettings = NightSettings()
    serve: ServeSettings = ServeSettings()
    bench: BenchSettings = BenchSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file_path())
        return (init_settings, env_settings, toml)

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def router_dir(self) -> Path:
        return self.home / "router"

    @property
    def memory_dir(self) -> Path:
        return self.home / "memory"

    @property
    def knowledge_dir(self) -> Path:
        return self.home / "knowledge"

    @property
    def conversations_db(self) -> Path:
        return self.home / "conversations.db"

    def prompt_for(self, expert: str | None) -> str:
        """The system prompt an expert answers with (and was trained with); 'base' and unknown ones get the default."""
        return self.experts.system_prompts.get(expert or "base", self.system_prompt)

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def history_file(self) -> Path:
        return self.home / "chat_history.txt"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into a readable EvoError."""
    path = config_file_path()
    if path.is_file():
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise EvoError(f"Config file {path} is not valid TOML: {exc}", "Fix the syntax or delete the file.") from exc
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EvoError(
            f"Invalid configuration: {problems}",
            f"Check {path} and your {ENV_PREFIX}* environment variables (`evo config show`).",
        ) from exc
    settings.home = settings.home.expanduser()
    return settings


@dataclass(frozen=True)
class SettingValue:
    """One effective setting and where it came from."""

    key: str
    value: Any
    source: str


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def describe_settings(settings: Settings) -> list[SettingValue]:
    """Every effective value with its origin: env var, config file or default."""
    path = config_file_path()
    file_values: dict[str, Any] = {}
    if path.is_file():
        file_values = _flatten(tomllib.loads(path.read_text(encoding="utf-8")))
    env = {k.upper(): v for k, v in os.environ.items()}
    rows = []
    for key, value in _flatten(settings.model_dump(mode="json")).items():
        env_name = ENV_PREFIX + key.replace(".", ENV_NESTED).upper()
        parent_env = ENV_PREFIX + key.split(".")[0].upper()
        if env_name in env:
            source = f"env {env_name}"
        elif "." in key and parent_env in env:
            source = f"env {parent_env}"
        elif key in file_values:
            source = f"file {path}"
        else:
            source = "default"
        rows.append(SettingValue(key, value, source))
    return rows
