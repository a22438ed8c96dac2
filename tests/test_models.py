"""Model registry and provisioning against real files, real packages and a real local Hub stand-in."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from evo_tr.config import load_settings
from evo_tr.errors import ModelIntegrityError, ModelNotFound
from evo_tr.models import ModelStore
from tests.conftest import run_evo, run_json
from tests.hub_standin import StandinHub

SMOL = "smollm2-135m-instruct"
QWEN = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture()
def store() -> ModelStore:
    return ModelStore(load_settings().models_dir)


@pytest.fixture(scope="module")
def smol_path() -> Path:
    return ModelStore(Path("/nonexistent")).path_for(ModelStore(Path("/nonexistent")).registry.get(SMOL))


def test_models_list_cli_shows_builtins():
    rows = {r["name"]: r for r in run_json("models", "list", "--json")}
    assert {SMOL, QWEN, "qwen2.5-3b-instruct"} <= rows.keys()
    assert rows[SMOL]["present"] is True
    assert rows[SMOL]["size"] == 98362432
    assert rows[SMOL]["license"] == "Apache-2.0"
    assert rows["qwen2.5-3b-instruct"]["present"] is False
    assert rows["qwen2.5-3b-instruct"]["source"] == "hub"


def test_embedded_single_part_is_used_in_place_and_hash_checked(store):
    path = store.ensure(SMOL)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "site-packages" in str(path)


def test_embedded_parts_are_assembled_and_verified(tmp_path):
    """The real default model: six package parts joined into a fresh cache, SHA-256 checked."""
    store = ModelStore(tmp_path / "models")
    spec = store.registry.get(QWEN)
    dest = store.path_for(spec)
    seen = []
    path = store.pull(QWEN, progress=seen.append)
    assert path == dest and path.stat().st_size == 491_400_064
    assert sum(seen) >= 491_400_064
    assert not list(path.parent.glob("*.partial"))
    assert store.pull(QWEN) == path  # idempotent


def test_unknown_model_lists_known_names(store):
    with pytest.raises(ModelNotFound) as info:
        store.registry.get("no-such-model")
    assert SMOL in info.value.hint


def test_missing_model_tells_which_pull_fixes_it():
    proc = run_evo("ask", "--model", "qwen2.5-3b-instruct", "Merhaba")
    assert proc.returncode == 2
    assert "evo models pull qwen2.5-3b-instruct" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_truncated_and_altered_gguf_are_refused(store, smol_path, tmp_path):
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(smol_path, copy)
    spec = store.add(copy, name="copy-model")
    assert store.ensure("copy-model") == copy.resolve()
    # Same size, one byte flipped: the pinned hash catches it.
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as info:
        store.ensure("copy-model")
    assert str(copy.resolve()) in info.value.message and "SHA-256" in info.value.message
    # Truncated: refused on size before hashing.
    copy.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ModelIntegrityError) as info:
        store.ensure("copy-model")
    assert "truncated" in info.value.message
    assert spec.sha256 == hashlib.sha256(smol_path.read_bytes()).hexdigest()


def test_truncated_gguf_without_pinned_hash_fails_cleanly_in_llama_cpp(tmp_path):
    """A GGUF cut short but with a valid header: llama.cpp refuses it and we name the file."""
    from evo_tr.engine.llama_cpp import LlamaCppEngine

    src = ModelStore(Path("/x")).path_for(ModelStore(Path("/x")).registry.get(SMOL))
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(src.read_bytes()[: 5_000_000])
    with pytest.raises(ModelIntegrityError) as info:
        LlamaCppEngine(bad)
    assert str(bad) in info.value.message


def test_models_add_rejects_non_gguf(tmp_path):
    junk = tmp_path / "notes.gguf"
    junk.write_text("hello")
    proc = run_evo("models", "add", str(junk))
    assert proc.returncode == 2 and "not a GGUF" in proc.stderr


@pytest.fixture()
def hub(smol_path):
    server = StandinHub().start()
    server.add("evo-test/tiny-GGUF", "tiny.gguf", smol_path)
    yield server
    server.stop()


def test_hub_pull_downloads_and_verifies(hub, store):
    proc = run_evo("models", "pull", "hf:evo-test/tiny-GGUF/tiny.gguf", "--name", "tiny", env={"HF_ENDPOINT": hub.url})
    assert proc.returncode == 0, proc.stderr
    spec = store.registry.get("tiny")
    path = store.path_for(spec)
    assert path.is_file() and path.stat().st_size == 98362432
    assert path.with_suffix(".sha256").read_text() == hub.files["evo-test/tiny-GGUF/tiny.gguf"].sha256
    assert any(method == "GET" for method, _, _ in hub.requests)
    rows = {r["name"]: r for r in run_json("models", "list", "--json")}
    assert rows["tiny"]["present"] is True
    # A later corruption is caught against the Hub's LFS hash.
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        store.ensure("tiny")


def test_hub_pull_resumes_a_partial_download(hub, store, smol_path):
    spec = store.register_hub("hf:evo-test/tiny-GGUF/tiny.gguf", name="tiny-resume")
    dest_dir = store.path_for(spec).parent
    partial = dest_dir / "tiny.gguf.partial"
    dest_dir.mkdir(parents=True, exist_ok=True)
    half = smol_path.read_bytes()[: 40_000_000]
    partial.write_bytes(half)
    proc = run_evo("models", "pull", "tiny-resume", env={"HF_ENDPOINT": hub.url})
    assert proc.returncode == 0, proc.stderr
    assert ("GET", "/evo-test/tiny-GGUF/resolve/main/tiny.gguf", "bytes=40000000-") in hub.requests
    assert store.ensure("tiny-resume").stat().st_size == 98362432
    assert not partial.exists()


def test_hub_token_from_dotenv(hub, store, tmp_path):
    hub.token = "hf_secret"
    store.register_hub("hf:evo-test/tiny-GGUF/tiny.gguf", name="tiny-gated")
    denied = run_evo("models", "pull", "tiny-gated", env={"HF_ENDPOINT": hub.url})
    assert denied.returncode == 2 and "HTTP 401" in denied.stderr and "HF_TOKEN" in denied.stderr
    (tmp_path / ".env").write_text("HF_TOKEN=hf_secret\n")
    allowed = run_evo("models", "pull", "tiny-gated", env={"HF_ENDPOINT": hub.url})
    assert allowed.returncode == 0, allowed.stderr
