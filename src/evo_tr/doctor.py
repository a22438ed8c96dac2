"""System checks (design Phase 0.1): each failure says how to fix it."""

from __future__ import annotations

import importlib
import importlib.util
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from typing import Literal

import psutil

from evo_tr.config import Settings
from evo_tr.errors import EvoError
from evo_tr.models.store import ModelStore

Status = Literal["ok", "warn", "fail"]
MIN_PYTHON = (3, 11)
MIN_RAM_GB = 4.0
MIN_DISK_GB = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _python() -> Check:
    ok = sys.version_info[:2] >= MIN_PYTHON
    return Check(
        "python",
        "ok" if ok else "fail",
        f"Python {platform.python_version()} ({sys.executable})",
        "" if ok else f"Install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ and re-run `make setup`.",
    )


def _ram() -> Check:
    total = psutil.virtual_memory().total / 1e9
    avail = psutil.virtual_memory().available / 1e9
    ok = total >= MIN_RAM_GB
    return Check(
        "ram",
        "ok" if ok else "warn",
        f"{total:.1f} GB total, {avail:.1f} GB available",
        "" if ok else "Use a smaller model (smollm2-135m-instruct) or close other programs.",
    )


def _disk(settings: Settings) -> Check:
    probe = settings.home if settings.home.exists() else settings.home.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 1e9
    ok = free >= MIN_DISK_GB
    return Check(
        "disk",
        "ok" if ok else "warn",
        f"{free:.1f} GB free at {probe}",
        "" if ok else f"Free space or point EVO_HOME at a bigger disk ({MIN_DISK_GB} GB recommended).",
    )


def _backend(name: str, configured: bool) -> Check:
    """A registered engine backend (plugin): does it import, with which libraries."""
    from evo_tr.engine import backend_class

    label = f"backend:{name}"
    try:
        detail = backend_class(name).probe() + (" — the configured engine.backend" if configured else "")
    except Exception as exc:  # any import failure (missing lib, bad wheel)
        fix = "Run `make setup` to (re)build llama-cpp-python." if name == "llama_cpp" else f"Install what the {name} backend needs."
        return Check(label, "fail" if configured else "warn", f"import failed: {exc}", fix)
    return Check(label, "ok", detail)


def _accelerators() -> Check:
    found = []
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            found.append(f"CUDA ({torch.cuda.get_device_name(0)})")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            found.append("Metal (MPS)")
    if platform.system() == "Darwin" and platform.machine() == "arm64" and not found:
        found.append("Apple Silicon (Metal via llama.cpp build)")
    if shutil.which("nvidia-smi") and not found:
        found.append("NVIDIA driver present (torch not CUDA-enabled)")
    detail = ", ".join(found) if found else "none: CPU only (fine for the embedded 0.5B model)"
    return Check("accelerator", "ok", detail)


def _model(settings: Settings, name: str) -> Check:
    store = ModelStore(settings.models_dir)
    try:
        spec = store.registry.get(name)
        status = store.status(spec)
        if not status.present:
            return Check(f"model:{name}", "fail", f"not provisioned ({status.path})", f"Run `evo models pull {name}`.")
        store.verify(spec)
    except EvoError as exc:
        return Check(f"model:{name}", "fail", exc.message, exc.hint or "")
    return Check(f"model:{name}", "ok", f"present and hash-valid ({status.path}, {status.size:,} bytes)")


def _memory(settings: Settings) -> Check:
    """The long-term store opens with our embedder (or the server answers, for the http backend)."""
    if not settings.memory.enabled:
        return Check("memory", "warn", "disabled (memory.enabled = false)", "Set memory.enabled = true to recall and save memories.")
    from evo_tr.memory.store import MemoryStore

    try:
        store = MemoryStore(settings)
        return Check("memory", "ok", f"{store.count()} memories, {settings.memory.backend} ({store.location})")
    except EvoError as exc:
        return Check("memory", "fail", exc.message, exc.hint or "")


def _sandbox() -> Check:
    """Which walls hold model-written code here, measured by running a probe through the real sandbox."""
    from evo_tr.sandbox import isolation

    iso = isolation()
    if not iso.get("works"):
        return Check("sandbox", "fail", "; ".join(iso.get("problems", [])) or "the probe program did not run",
                     "Make sure a Python every user can read is installed (Debian: python3), then run `evo doctor` again.")
    parts = [f"user {iso['user_name']}", f"files {iso['filesystem']} (temp dir only)", f"exec {iso['exec']}",
             f"network {iso['network']}", "PID namespace" if iso.get("pid_namespace") else "process group",
             f"≤ {iso['processes']} processes" if iso.get("processes") else "no process cap", f"python {iso['python']}"]
    weak = [] if iso["filesystem"].startswith("landlock") else ["Landlock"]
    weak += [] if iso["network"].startswith("namespace") else ["network namespace"]
    weak += ["unprivileged user"] if iso["user_name"] == "root" else []
    fix = ("Missing: " + ", ".join(weak) + ". Linux ≥ 5.13 with Landlock enabled (`landlock` in /sys/kernel/security/lsm) keeps "
           "model-written code out of your files; user namespaces give it a private network; as root, a `nobody` user "
           "and a Python outside /root let it drop root.") if weak else ""
    return Check("sandbox", "warn" if weak else "ok", " · ".join(parts + ([iso["note"]] if iso.get("note") else [])), fix)


def _remote_engine(settings: Settings) -> Check:
    """engine.backend = "openai": the server answers, serves the base, and serves every active expert by name."""
    import httpx

    from evo_tr.engine.remote import api_key_from_settings

    cfg = settings.engine
    if not cfg.url:
        return Check("remote engine", "fail", "engine.backend is \"openai\" but engine.url is not set", "Set EVO_ENGINE__URL=http://HOST:PORT/v1.")
    try:
        key = api_key_from_settings(cfg)
        r = httpx.get(f"{cfg.url.rstrip('/')}/models", headers={"Authorization": f"Bearer {key}"} if key else {},
                      timeout=httpx.Timeout(10, connect=cfg.connect_timeout_s))
        served = [m["id"] for m in r.json().get("data", [])] if r.status_code == 200 else None
    except EvoError as exc:
        return Check("remote engine", "fail", exc.message, exc.hint or "")
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return Check("remote engine", "fail", f"{cfg.url} is unreachable or not OpenAI-shaped ({type(exc).__name__})",
                     "Start the server (vLLM, llama.cpp's server, evo serve) or fix engine.url.")
    if served is None:
        return Check("remote engine", "fail", f"{cfg.url}/models answered HTTP {r.status_code}", "Check engine.api_key and engine.url (the API root, ending in /v1).")
    from evo_tr.experts import registry

    reg = registry(settings)
    naming = (lambda e: f"evo-tr/{e}") if cfg.lora_naming == "evo" else (lambda e: e)
    active = [e for e in reg.experts() if (v := reg.active(e)) is not None and _same_base(settings, v)]  # another base's are not served
    missing = [e for e in active if naming(e) not in served]
    detail = f"{cfg.url}: serves {', '.join(served) or 'nothing'}"
    if missing:
        return Check("remote engine", "warn", f"{detail}; not served: {', '.join(missing)} (the base answers for them)",
                     "Load them there: `evo adapters publish` (vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), or start it with "
                     "the command from `evo adapters publish --print`.")
    return Check("remote engine", "ok", detail)


def _same_base(settings: Settings, version) -> bool:
    try:
        sha = ModelStore(settings.models_dir).registry.get(settings.model).sha256
    except EvoError:
        return False
    return version.base_sha256 == sha


def run_checks(settings: Settings) -> list[Check]:
    checks = [_python(), _ram(), _disk(settings)]
    from evo_tr.engine import backends

    checks += [_backend(name, name == settings.engine.backend) for name in sorted(backends())]
    checks.append(_accelerators())
    checks.append(_model(settings, settings.model))
    if settings.engine.backend == "openai":
        checks.append(_remote_engine(settings))
    checks.append(_memory(settings))
    checks.append(_sandbox())
    return checks
