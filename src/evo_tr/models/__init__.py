"""Model registry and provisioning (embedded packages, Hugging Face Hub, local files)."""

from evo_tr.models.registry import ModelSpec, Registry
from evo_tr.models.store import ModelStatus, ModelStore

__all__ = ["ModelSpec", "ModelStatus", "ModelStore", "Registry"]
