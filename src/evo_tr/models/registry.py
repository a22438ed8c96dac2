"""Model registry: built-in catalog (package data) plus the user's own entries."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, Field, TypeAdapter

from evo_tr.errors import ModelNotFound

USER_REGISTRY = "registry.json"


class PackagePart(BaseModel):
    """One data file inside an installed distribution; never imported, only read."""

    distribution: str
    version: str
    path: str


class EmbeddedSource(BaseModel):
    kind: Literal["embedded"] = "embedded"
    parts: list[PackagePart]


class HubSource(BaseModel):
    kind: Literal["hub"] = "hub"
    repo_id: str
    revision: str = "main"


class LocalSource(BaseModel):
    kind: Literal["local"] = "local"
    path: str


Source = Annotated[Union[EmbeddedSource, HubSource, LocalSource], Field(discriminator="kind")]


class ModelSpec(BaseModel):
    """What a model is and where its bytes come from."""

    name: str
    filename: str
    description: str = ""
    license: str = "unknown"
    size: int | None = None
    sha256: str | None = None
    source: Source

    @property
    def builtin(self) -> bool:
        return self.source.kind != "local"


def _catalog() -> dict[str, ModelSpec]:
    text = resources.files("evo_tr").joinpath("data/models/catalog.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    return {name: ModelSpec(name=name, **entry) for name, entry in raw.items()}


_USER_ADAPTER = TypeAdapter(list[ModelSpec])


class Registry:
    """Lookup of model specs by name; user entries are stored as JSON under the models dir."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._builtin = _catalog()

    @property
    def user_file(self) -> Path:
        return self.models_dir / USER_REGISTRY

    def _user_entries(self) -> dict[str, ModelSpec]:
        if not self.user_file.is_file():
            return {}
        specs = _USER_ADAPTER.validate_json(self.user_file.read_bytes())
        return {spec.name: spec for spec in specs}

    def all(self) -> list[ModelSpec]:
        merged = dict(self._builtin)
        merged.update(self._user_entries())
        return list(merged.values())

    def get(self, name: str) -> ModelSpec:
        for spec in self.all():
            if spec.name == name:
                return spec
        known = ", ".join(sorted(s.name for s in self.all()))
        raise ModelNotFound(
            f"Unknown model '{name}'.",
            f"Known models: {known}. Register a local GGUF with `evo models add PATH`.",
        )

    def save_user(self, spec: ModelSpec) -> None:
        """Add or replace a user entry, writing atomically so the registry is never half-written."""
        entries = self._user_entries()
        entries[spec.name] = spec
        self._write(entries)

    def remove_user(self, name: str) -> bool:
        entries = self._user_entries()
        if name not in entries:
            return False
        del entries[name]
        self._write(entries)
        return True

    def _write(self, entries: dict[str, ModelSpec]) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.user_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([s.model_dump() for s in entries.values()], indent=2), encoding="utf-8")
        os.replace(tmp, self.user_file)
