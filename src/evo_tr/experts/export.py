"""PEFT LoRA → GGUF LoRA adapter for llama.cpp, written with the PyPI `gguf` package.

llama.cpp's own converter needs a newer `gguf` than PyPI has; the format is small: general.type =
"adapter", adapter.type = "lora", adapter.lora.alpha, and per target tensor `<gguf name>.lora_a`
(torch shape r × in) and `.lora_b` (out × r). For the llama architecture, convert_hf_to_gguf permutes
the rows of q/k projections (rotary layout), so lora_b of q_proj/k_proj gets the same permutation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evo_tr.errors import EvoError

_LORA_KEY = re.compile(r"^base_model\.model\.(?P<base>.+)\.lora_(?P<ab>[AB])\.weight$")
PERMUTED_ARCHS = {"llama"}  # archs whose q/k rows convert_hf_to_gguf reorders


def gguf_arch(base_gguf: Path) -> tuple[str, int, int, int]:
    """(architecture, block count, head count, kv head count) from the base model's GGUF header."""
    import gguf

    reader = gguf.GGUFReader(str(base_gguf))

    def field(key: str):
        f = reader.fields.get(key)
        if f is None:
            return None
        value = f.parts[f.data[0]]
        return bytes(value).decode() if f.types and f.types[0] == gguf.GGUFValueType.STRING else int(value[0])

    arch = field("general.architecture")
    n_head = field(f"{arch}.attention.head_count")
    return arch, field(f"{arch}.block_count"), n_head, field(f"{arch}.attention.head_count_kv") or n_head


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def export_gguf(peft_dir: Path, base_gguf: Path, out_path: Path) -> Path:
    """Write `out_path` (atomically) from a PEFT adapter folder trained on the model in `base_gguf`."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((peft_dir / "adapter_config.json").read_text())
    weights = load_file(str(peft_dir / "adapter_model.safetensors"))
    arch, n_blocks, n_head, n_head_kv = gguf_arch(base_gguf)
    arch_ids = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in arch_ids:
        raise EvoError(f"Unsupported architecture {arch!r} for LoRA export.")
    names = gguf.get_tensor_name_map(arch_ids[arch], n_blocks)
    tmp = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    for key in sorted(weights):
        m = _LORA_KEY.match(key)
        if not m:
            raise EvoError(f"Unexpected tensor {key!r} in {peft_dir}.", "Only plain LoRA adapters (lora_A/lora_B) can be exported.")
        base = m.group("base")
        target = names.get_name(base + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise EvoError(f"No llama.cpp tensor for {base!r} ({arch}).")
        tensor = weights[key].astype(np.float32)
        if m.group("ab") == "B" and arch in PERMUTED_ARCHS and base.endswith(("q_proj", "k_proj")):
            tensor = _permute(tensor, n_head if base.endswith("q_proj") else n_head_kv)
        writer.add_tensor(f"{target}.lora_{m.group('ab').lower()}", tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out_path)
    return out_path


@dataclass(frozen=True)
class LoraFiles:
    """An adapter outside the registry (a random-init LoRA), in the shape engines take registered versions."""

    expert: str
    gguf: Path
    peft: Path
    scale: float = 1.0


def random_lora(torch_model, base_gguf: Path, folder: Path, *, expert: str = "random", seed: int | None = None,
                b_std: float | None = None) -> LoraFiles:
    """A random-init LoRA (r=8, alpha 16, q/v projections) saved as `folder/peft` and exported to `folder/adapter.gguf`:
    the layout a registry version has, for speed figures and tests where what it learnt does not matter.

    `seed` makes it the same every time; `b_std` redraws lora_B from N(0, b_std): PEFT's own init of B is too weak
    to move a greedy answer reliably, N(0, 0.2) always does (SmolLM2 and Qwen). `torch_model` gets the LoRA layers.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from evo_tr.experts.registry import GGUF_NAME, PEFT_DIR

    if seed is not None:
        torch.manual_seed(seed)
    peft = get_peft_model(torch_model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    if b_std is not None:
        with torch.no_grad():
            for name, param in peft.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, b_std)
    peft.save_pretrained(folder / PEFT_DIR)
    export_gguf(folder / PEFT_DIR, base_gguf, folder / GGUF_NAME)
    return LoraFiles(expert, folder / GGUF_NAME, folder / PEFT_DIR)
