"""Adapter registry: adapters/EXPERT/vN/{peft/, adapter.gguf, metadata.json} and an `active` pointer per expert."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from evo_tr.errors import EvoError

GGUF_NAME = "adapter.gguf"
PEFT_DIR = "peft"
META_NAME = "metadata.json"
ACTIVE_NAME = "active"
HISTORY_NAME = "history"
SCALE_RANGE = (0.0, 2.0)  # exclusive, inclusive: 0 would be the base model, above 2 only amplifies noise


def check_scale(scale: object) -> float:
    """A LoRA scale from a flag or metadata.json, refused when it is not a number in SCALE_RANGE."""
    low, high = SCALE_RANGE
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not low < scale <= high:
        raise EvoError(f"Adapter scale must be a number above {low:g} and at most {high:g}, not {scale!r}.",
                       "1 applies the adapter as trained; smaller values move the expert back toward the base model.")
    return float(scale)


def _write_atomic(path: Path, text: str) -> None:
    """Write via a sibling temp file and rename, so a crash leaves the old file, never half a new one."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)


@dataclass(frozen=True)
class AdapterVersion:
    expert: str
    version: int
    path: Path
    meta: dict[str, Any]
    packaged: bool = False

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def gguf(self) -> Path:
        return self.path / GGUF_NAME

    @property
    def peft(self) -> Path:
        return self.path / PEFT_DIR

    @property
    def scale(self) -> float:
        """The factor llama.cpp applies to this LoRA (`scale` in metadata.json, default 1 = as trained)."""
        return check_scale(self.meta.get("scale", 1.0))

    @property
    def base_sha256(self) -> str:
        return self.meta.get("base", {}).get("sha256", "")

    def as_dict(self) -> dict[str, Any]:
        return {"expert": self.expert, "version": self.tag, "path": str(self.path), "packaged": self.packaged, "scale": 1.0, **self.meta}


def packaged_root() -> Path:
    return Path(str(resources.files("evo_tr") / "data" / "adapters"))


class AdapterRegistry:
    """User adapters under `root`; adapters shipped in the package are the fallback version of an expert.

    `publisher` (experts/publish.py, set when the engine is a vLLM-style remote) is told of every switch of the
    active version *before* the pointer moves: a remote that refuses leaves the pointer as it was."""

    def __init__(self, root: Path, publisher: Any = None) -> None:
        self.root = root
        self.publisher = publisher

    def _announce(self, expert: str, target: AdapterVersion | None) -> None:
        if self.publisher is not None:
            self.publisher.switch(expert, target)

    def _expert_dir(self, expert: str) -> Path:
        if not expert or "/" in expert or expert.startswith("."):
            raise EvoError(f"Invalid expert name {expert!r}.")
        return self.root / expert

    def versions(self, expert: str) -> list[AdapterVersion]:
        out = []
        for folder in sorted(self._expert_dir(expert).glob("v*")):
            if folder.name[1:].isdigit() and (folder / META_NAME).is_file():
                out.append(AdapterVersion(expert, int(folder.name[1:]), folder, json.loads((folder / META_NAME).read_text())))
        return sorted(out, key=lambda v: v.version)

    def packaged(self, expert: str) -> AdapterVersion | None:
        folder = packaged_root() / expert
        if (folder / META_NAME).is_file() and (folder / GGUF_NAME).is_file():
            return AdapterVersion(expert, 0, folder, json.loads((folder / META_NAME).read_text()), packaged=True)
        return None

    def experts(self) -> list[str]:
        names = {p.name for p in self.root.glob("*") if p.is_dir()} if self.root.is_dir() else set()
        names |= {p.name for p in packaged_root().glob("*") if (p / META_NAME).is_file()} if packaged_root().is_dir() else set()
        return sorted(names)

    def get(self, expert: str, version: str | int) -> AdapterVersion:
        number = int(str(version).lstrip("v")) if str(version).lstrip("v").isdigit() else None
        if number == 0 and self.packaged(expert):
            return self.packaged(expert)
        for v in self.versions(expert):
            if v.version == number:
                return v
        known = ", ".join(v.tag for v in self.versions(expert)) or "none"
        raise EvoError(f"No adapter {expert} {version}.", f"Known versions of {expert}: {known} (`evo adapters list`).")

    def active(self, expert: str) -> AdapterVersion | None:
        """The version in use: the `active` pointer, else the packaged adapter, else none."""
        pointer = self._expert_dir(expert) / ACTIVE_NAME
        if pointer.is_file():
            tag = pointer.read_text().strip()
            if tag == "none":
                return None
            return self.get(expert, tag)
        return self.packaged(expert)

    def next_dir(self, expert: str) -> Path:
        existing = self.versions(expert)
        number = (existing[-1].version + 1) if existing else 1
        return self._expert_dir(expert) / f"v{number}"

    def register(self, expert: str, staging: Path, meta: dict[str, Any], *, activate: bool = True) -> AdapterVersion:
        """Move a finished staging folder (peft/ + adapter.gguf) into the next version, atomically."""
        folder = self.next_dir(expert)
        (staging / META_NAME).write_text(json.dumps({**meta, "version": folder.name}, indent=2, ensure_ascii=False))
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging.replace(folder)
        version = self.get(expert, folder.name)
        if activate:
            self.activate(expert, version.tag)
        return version

    def _history(self, expert: str) -> list[str]:
        path = self._expert_dir(expert) / HISTORY_NAME
        return path.read_text().split() if path.is_file() else []

    def _write_pointer(self, expert: str, tag: str, history: list[str] | None = None) -> None:
        """The pointer, then the history, each replaced whole (a kill leaves the old file or the new one, never half;
        between the two the history may lack the last switch, which `rollback` reconciles)."""
        folder = self._expert_dir(expert)
        folder.mkdir(parents=True, exist_ok=True)
        history = self._history(expert) if history is None else history
        _write_atomic(folder / ACTIVE_NAME, tag)
        _write_atomic(folder / HISTORY_NAME, "\n".join([*history, tag]) + "\n")

    def activate(self, expert: str, version: str, *, publish: bool = True) -> AdapterVersion | None:
        """Point EXPERT at VERSION ('none' = the base model); `publish=False` when the caller published already."""
        target = None if version == "none" else self.get(expert, version)
        if publish:
            self._announce(expert, target)
        self._write_pointer(expert, "none" if target is None else target.tag)
        return target

    def set_scale(self, expert: str, version: str, scale: float) -> AdapterVersion:
        """Record the inference scale in the version's metadata.json (atomically: a crash leaves the old file)."""
        target = self.get(expert, version)
        if target.packaged:
            raise EvoError(f"The packaged {expert} adapter is read-only (its scale is {target.scale:g}).",
                           f"Copy it as a version of your own, or train one: `evo train {expert}`.")
        meta = {**target.meta, "scale": check_scale(scale)}
        _write_atomic(target.path / META_NAME, json.dumps(meta, indent=2, ensure_ascii=False))
        return self.get(expert, target.tag)

    def rollback(self, expert: str) -> AdapterVersion | None:
        """Back to the version active before the current one (the pointer history remembers). The history is
        rewritten whole with the pointer (a kill campaign found the old truncate-then-append could lose it)."""
        history = self._history(expert)
        pointer = self._expert_dir(expert) / ACTIVE_NAME
        current = pointer.read_text().strip() if pointer.is_file() else None
        if current and (not history or history[-1] != current):
            history.append(current)  # killed between the pointer and the history write: the pointer is the truth
        if len(history) < 2:
            raise EvoError(f"No earlier version of {expert} to roll back to.", "See `evo adapters list`.")
        previous = history[-2]
        target = None if previous == "none" else self.get(expert, previous)  # still registered (else the error names the known versions)
        self._announce(expert, target)
        self._write_pointer(expert, previous, history[:-2])
        return target

    def remove(self, expert: str, version: str) -> None:
        target = self.get(expert, version)
        if target.packaged:
            raise EvoError("Packaged adapters cannot be removed.", f"Use `evo adapters activate {expert} none` to stop using it.")
        current = self.active(expert)
        if current is not None and current.path == target.path:
            raise EvoError(f"{expert} {target.tag} is active.", f"Activate another version first (`evo adapters activate {expert} vN|none`).")
        shutil.rmtree(target.path)


def check_base(version: AdapterVersion, base_name: str, base_sha256: str) -> None:
    """Refuse an adapter trained on another base: its weights would silently produce garbage."""
    if version.base_sha256 != base_sha256:
        trained = version.meta.get("base", {}).get("name", "?")
        raise EvoError(
            f"Adapter {version.expert} {version.tag} was trained on {trained} (sha256 {version.base_sha256[:12]}…), "
            f"not on the loaded {base_name} ({base_sha256[:12]}…).",
            f"Use the model it was trained on, or train {version.expert} for this model (`evo train {version.expert}`).",
        )
