"""The remote backend (issue 28) against real servers on loopback: another `evo serve` as the engine, and llama.cpp's
own OpenAI-compatible server (`python -m llama_cpp.server`, a peer we did not write)."""

from __future__ import annotations

import json
import shutil
import socket
import time

import pytest

from evo_tr.config import load_settings
from evo_tr.engine import GenerationConfig, Message, load_engine
from evo_tr.engine.llama_cpp import LlamaCppEngine
from evo_tr.errors import EvoError
from evo_tr.experts import registry
from evo_tr.models import ModelStore

from .conftest import MODEL, free_port, run_evo, run_json
from .test_serve import KEY, register_random_adapter, start_server, stop

GREEDY = GenerationConfig(max_tokens=24, temperature=0.0, seed=0)
PROMPTS = [[Message("system", "You are a helpful assistant."), Message("user", "What is the capital of France?")],
           [Message("user", "Python'da bir listeyi ters çeviren kısa bir fonksiyon yaz.")]]


def remote_env(url: str, **extra: str) -> dict[str, str]:
    return {"EVO_ENGINE__BACKEND": "openai", "EVO_ENGINE__URL": url, "EVO_ENGINE__API_KEY": KEY, "EVO_ENGINE__LORA_NAMING": "evo", **extra}


@pytest.fixture(scope="module")
def remote(tmp_path_factory, evo_home):
    """A second `evo serve` (with a key and a random python_coder LoRA for SmolLM2) that the tests use as the engine."""
    home = tmp_path_factory.mktemp("remote-engine")
    register_random_adapter(home, "python_coder", torch_home=evo_home)
    srv = start_server(home)
    yield srv
    stop(srv)


@pytest.fixture
def local_home(tmp_path, remote):
    """EVO-TR's own data dir, with the same adapter registered (so its orchestrator attaches it by name)."""
    home = tmp_path / "local"
    shutil.copytree(remote.home / "adapters", home / "adapters")
    return home


def test_answers_through_a_remote_evo_serve_equal_the_in_process_engine(remote, local_home, monkeypatch):
    for key, value in remote_env(f"{remote.url}/v1").items():
        monkeypatch.setenv(key, value)
    settings = load_settings(home=local_home, model=MODEL)
    engine = load_engine(settings, owned=False)
    assert engine.name == "openai" and not engine.capabilities.kv_snapshots and engine.capabilities.local_tokenizer
    version = registry(settings).active("python_coder")
    engine.attach_adapter(version)
    local = LlamaCppEngine(ModelStore(settings.models_dir).ensure(MODEL), model_name=MODEL)
    local.attach_adapter(version)
    try:
        for messages in PROMPTS:
            assert engine.render(messages) == local.render(messages) and engine.count_messages(messages) == local.count_messages(messages)
            for adapter in (None, "python_coder"):
                remote_stream = engine.chat_stream(messages, GREEDY, adapter=adapter)
                remote_text = remote_stream.text()
                local_text = local.chat_stream(messages, GREEDY, adapter=adapter).text()
                assert remote_text == local_text, (adapter, remote_text, local_text)
                assert remote_stream.stats.completion_tokens > 0 and remote_stream.stats.ttft_s is not None
        base = engine.chat_stream(PROMPTS[1], GREEDY).text()
        assert engine.chat_stream(PROMPTS[1], GREEDY, adapter="python_coder").text() != base  # the adapter was applied
    finally:
        engine.close()
        local.close()


def test_a_full_turn_routes_remembers_and_picks_the_expert_on_the_remote(remote, local_home):
    env = {"EVO_HOME": str(local_home), **remote_env(f"{remote.url}/v1"), "EVO_GENERATION__MAX_TOKENS": "16"}
    first = run_evo("ask", "--json", "Merhaba! Benim adım Deniz.", env=env)
    assert first.returncode == 0, first.stderr
    assert any("Deniz" in c["text"] for c in json.loads(first.stdout)["captured"])
    code = run_evo("ask", "--json", "Python'da bir listenin ortalamasını döndüren fonksiyon yazar mısın?", env=env)
    assert code.returncode == 0, code.stderr
    out = json.loads(code.stdout)
    assert out["intent"] == "code_python" and out["expert"] == "python_coder" and out["adapter"] == "python_coder" and out["answer"]
    recall = run_evo("ask", "--json", "Benim adım neydi?", env=env)
    assert recall.returncode == 0, recall.stderr
    assert any("Deniz" in m["text"] for m in json.loads(recall.stdout)["memories"])  # memory lives here, not on the remote
    remote_memories = run_evo("memory", "list", "--json", env={"EVO_HOME": str(remote.home)})
    assert remote_memories.returncode == 0 and "Deniz" not in remote_memories.stdout


def test_doctor_checks_the_remote_and_names_the_experts_it_does_not_serve(remote, local_home):
    env = {"EVO_HOME": str(local_home), **remote_env(f"{remote.url}/v1")}
    checks = {c["name"]: c for c in run_json("doctor", "--json", env=env)["checks"]}
    assert checks["remote engine"]["status"] == "ok" and "evo-tr/python_coder" in checks["remote engine"]["detail"]
    plain = {c["name"]: c for c in run_json("doctor", "--json", env={**env, "EVO_ENGINE__LORA_NAMING": "plain"})["checks"]}
    assert plain["remote engine"]["status"] == "warn" and "not served: python_coder" in plain["remote engine"]["detail"]
    assert "evo adapters publish" in plain["remote engine"]["fix"]
    down = run_evo("doctor", "--json", env={**env, "EVO_ENGINE__URL": f"http://127.0.0.1:{_free_port_closed()}/v1"})
    assert {c["name"]: c for c in json.loads(down.stdout)["checks"]}["remote engine"]["status"] == "fail"


def _free_port_closed() -> int:
    port = free_port()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def test_a_remote_that_is_down_is_a_clear_error_not_a_hang(tmp_path):
    local_home = tmp_path / "local"
    env = {"EVO_HOME": str(local_home), **remote_env(f"http://127.0.0.1:{_free_port_closed()}/v1"), "EVO_ENGINE__RETRIES": "1"}
    start = time.monotonic()
    proc = run_evo("ask", "Merhaba", env=env, timeout=120)
    assert proc.returncode == 2 and "unreachable" in proc.stderr and "engine.url" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - start < 60
    missing = run_evo("ask", "Merhaba", env={"EVO_HOME": str(local_home), "EVO_ENGINE__BACKEND": "openai"})
    assert missing.returncode == 2 and "engine.url" in missing.stderr


# -- publishing adapters (vLLM's runtime LoRA API; vLLM itself is in tests/test_vllm.py, slow) ----------------
def test_a_remote_that_refuses_a_publish_leaves_the_active_version_as_it_was(local_home):
    env = {"EVO_HOME": str(local_home), "EVO_ENGINE__BACKEND": "openai", "EVO_ENGINE__URL": f"http://127.0.0.1:{_free_port_closed()}/v1",
           "EVO_ENGINE__CONNECT_TIMEOUT_S": "2"}
    pointer = local_home / "adapters" / "python_coder" / "active"
    assert pointer.read_text().strip() == "v1"
    printed = run_evo("adapters", "publish", "--print", "--base", "/srv/models/smollm2-hf", "--port", "8123", env=env)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve /srv/models/smollm2-hf ")
    assert "--enable-lora" in printed.stdout and "--port 8123" in printed.stdout
    assert f"python_coder={(local_home / 'adapters' / 'python_coder' / 'v1' / 'peft').resolve()}" in printed.stdout
    for args in (("adapters", "publish", "python_coder"), ("adapters", "activate", "python_coder", "none"), ("adapters", "rollback", "python_coder")):
        proc = run_evo(*args, env=env)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert ("unreachable" in proc.stderr and "unchanged" in proc.stderr) or "No earlier version" in proc.stderr, proc.stderr
        assert pointer.read_text().strip() == "v1"  # the remote refused: nothing moved here either
    off = run_evo("adapters", "activate", "python_coder", "none", env={**env, "EVO_ENGINE__PUBLISH_ADAPTERS": "false"})
    assert off.returncode == 0 and pointer.read_text().strip() == "none"  # publishing off: a local switch only
    again = run_evo("adapters", "activate", "python_coder", "v1", env={**env, "EVO_ENGINE__LORA_NAMING": "evo"})
    assert again.returncode == 0 and pointer.read_text().strip() == "v1"  # another evo serve is not published to


# -- llama.cpp's own server as the remote -------------------------------------------------------------
@pytest.fixture(scope="module")
def llama_server():
    pytest.importorskip("sse_starlette", reason="llama_cpp.server needs sse-starlette (in the test extras: `make setup`)")
    from evo_tr.bench import llama_cpp_server

    settings = load_settings(model=MODEL)
    with llama_cpp_server(ModelStore(settings.models_dir).ensure(MODEL), MODEL, settings, say=lambda _: None) as (url, proc):
        yield int(url.rsplit(":", 1)[1].split("/")[0]), proc


def test_llama_cpps_own_server_streams_honours_a_stop_string_and_its_stop_is_a_notice(llama_server, local_home, tmp_path, monkeypatch):
    port, proc = llama_server
    monkeypatch.setenv("EVO_ENGINE__BACKEND", "openai")
    monkeypatch.setenv("EVO_ENGINE__URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("EVO_ENGINE__REMOTE_MODEL", MODEL)
    settings = load_settings(home=tmp_path / "home", model=MODEL)
    engine = load_engine(settings, owned=False)
    try:
        stream = engine.chat_stream(PROMPTS[0], GREEDY)
        pieces = list(stream)
        assert len(pieces) >= 2 and "Paris" in "".join(pieces) and stream.stats.finish_reason in ("stop", "length")
        full = "".join(pieces)
        cut = next(w for w in full.split() if len(w) > 3)  # a word it says: stop there
        stopped = engine.chat_stream(PROMPTS[0], GenerationConfig(max_tokens=24, temperature=0.0, seed=0, stop=(cut,))).text()
        assert cut not in stopped and full.startswith(stopped.rstrip()[:10])
    finally:
        engine.close()
    # it is a peer without vLLM's runtime LoRA API: publishing there is refused with the fix, nothing moves
    refused = run_evo("adapters", "publish", "python_coder", "--to", f"http://127.0.0.1:{port}/v1", env={"EVO_HOME": str(local_home)})
    assert refused.returncode == 2 and "no runtime LoRA API" in refused.stderr and "VLLM_ALLOW_RUNTIME_LORA_UPDATING" in refused.stderr, refused.stderr
    # the server stopped: a turn through the orchestrator says so in one line and answers nothing, never hangs
    proc.terminate()
    proc.wait(timeout=30)
    env = {"EVO_HOME": str(tmp_path / "home"), "EVO_ENGINE__BACKEND": "openai", "EVO_ENGINE__URL": f"http://127.0.0.1:{port}/v1",
           "EVO_ENGINE__REMOTE_MODEL": MODEL, "EVO_ENGINE__RETRIES": "0"}
    down = run_evo("ask", "Merhaba", env=env, timeout=120)
    assert down.returncode == 2 and "unreachable" in down.stderr and "Traceback" not in down.stderr, down.stderr
    with pytest.raises(EvoError):
        load_engine(load_settings(home=tmp_path / "home", model=MODEL), owned=False)
