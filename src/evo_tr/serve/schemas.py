"""Typed request and response bodies of the OpenAI-compatible endpoints (validated at the boundary).

Only what EVO-TR can honour is accepted. OpenAI parameters it cannot (n > 1, tools, logprobs, penalties,
response formats) are declared so a client that sets them gets a 400 naming the parameter instead of
being silently ignored; harmless ones (`user`, `store`, `service_tier`) are accepted and ignored; any
other field is an error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"] = Field(description="'developer' counts as system.")
    content: str | list[TextPart] = Field(description="Text, or a list of text parts (images are not supported).")
    name: str | None = Field(None, max_length=64, description="Accepted and ignored.")

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="evo-tr (the router picks the expert per message), evo-tr/base, or evo-tr/EXPERT.")
    messages: list[ChatMessage] = Field(min_length=1, description="The whole conversation; the last message is the user's.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="Wins over max_tokens.")
    stop: str | list[str] | None = Field(None, description="Up to 4 stop strings.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = Field(None, description="`session_id` here (or the X-Session-Id header) stores the turns in that session.")
    # accepted and ignored
    user: str | None = Field(None, max_length=256)
    store: bool | None = None
    service_tier: str | None = Field(None, max_length=32)
    # declared so that setting them is a clear 400
    n: int | None = Field(None, ge=1, le=128, description="Only 1 is supported.")
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, description="Only 0 is supported.")
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, description="Only 0 is supported.")
    logprobs: bool | None = Field(None, description="Not supported.")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="Not supported.")
    logit_bias: dict[str, float] | None = Field(None, description="Not supported.")
    tools: list[dict[str, Any]] | None = Field(None, description="Not supported.")
    tool_choice: str | dict[str, Any] | None = Field(None, description="Not supported.")
    response_format: dict[str, Any] | None = Field(None, description="Only {'type': 'text'}.")

    def unsupported(self) -> tuple[str, str] | None:
        """(parameter, why) for the first parameter set to something EVO-TR cannot do."""
        if self.n not in (None, 1):
            return "n", "Only n=1 is supported: send the request several times (with different seeds) for more answers."
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                return name, f"{name} is not supported (only 0); EVO-TR uses engine.repeat_penalty from its config."
        if self.logprobs or self.top_logprobs:
            return ("logprobs" if self.logprobs else "top_logprobs"), "Log probabilities are not supported."
        if self.logit_bias:
            return "logit_bias", "logit_bias is not supported."
        if self.tools or self.tool_choice not in (None, "none"):
            return ("tools" if self.tools else "tool_choice"), "Tool calling is not supported."
        if self.response_format not in (None, {"type": "text"}):
            return "response_format", "Only the text response format is supported."
        if isinstance(self.stop, list) and len(self.stop) > 4:
            return "stop", "At most 4 stop strings."
        return None


class EvoInfo(BaseModel):
    """What EVO-TR did with the message: the `evo` extension object on every chat response."""

    intent: str = Field(description="The router's intent ('' when the model id forced the expert).")
    confidence: float
    expert: str
    adapter: str | None = Field(description="The LoRA adapter that answered (None: the base model).")
    adapter_version: str | None
    route_source: str = Field(description="router, request (model id), router-failed.")
    memory_ids: list[str] = Field(description="Memories and reference passages put into the prompt.")
    sources: list[dict[str, Any]] = Field(description="The reference passages, with their labels.")
    session_id: str | None = Field(description="The session the turn is stored in (None: stateless).")
    turn: int | None
    e2e_ttft_ms: float | None = Field(description="Message received by the orchestrator to first token.")
    overhead_ms: float = Field(description="Routing, recall, prompt assembly and logging.")
    queue_ms: float | None = Field(description="Waiting for the engine behind other requests.")
    notices: list[str]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    evo: EvoInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "evo-tr"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="evo-tr-e5 (multilingual-e5-small, 384 dimensions).")
    input: str | list[str] = Field(description="A text or a list of texts (token arrays are not supported).")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=4096, description="Only 384.")
    input_type: Literal["query", "passage"] = Field("query", description="e5's prefix: 'query' (default, also for symmetric tasks) or 'passage' for documents to search.")
    user: str | None = Field(None, max_length=256)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
