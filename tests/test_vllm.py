"""vLLM for real (issue 28): its CPU build serves SmolLM2 in HF format, EVO-TR publishes one of its PEFT adapters to
it at runtime, and a chat turn through the remote backend uses the adapter (its answer differs from the base's and
starts like PEFT's own greedy output). vLLM lives in its own virtualenv (`make vllm`, part of `make test-all`'s
setup) and takes about a minute to start on two cores, so the module is `slow`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from evo_tr.config import load_settings
from evo_tr.engine import GenerationConfig, Message, load_engine
from evo_tr.experts import registry

from .conftest import MODEL, report_row, run_evo
from .test_serve import register_random_adapter

pytestmark = pytest.mark.slow

GREEDY = GenerationConfig(max_tokens=16, temperature=0.0, seed=0)
CODE = "Python'da bir listenin ortalamasını döndüren fonksiyon yazar mısın?"
MESSAGES = [Message("system", "You are a helpful assistant."), Message("user", "Write a Python function that reverses a list.")]
FIRST_TOKENS = 6  # vLLM's kernels and PyTorch's float32 agree this far on SmolLM2 (both greedy); later tokens may part on near-ties


def vllm_python() -> Path:
    path = Path(os.environ.get("EVO_VLLM_PYTHON", Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"))
    if not path.is_file():
        pytest.fail(f"vLLM's virtualenv is missing ({path}): `make vllm` installs it (make test-all does so by itself).")
    return path


@pytest.fixture(scope="module")
def hf_base(evo_home):
    """SmolLM2 converted to HF format by `evo models hf` (the folder vLLM loads and the adapters were trained on)."""
    proc = run_evo("models", "hf", MODEL, "--json", env={"EVO_HOME": str(evo_home)}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    folder = Path(json.loads(proc.stdout)["hf_dir"])
    assert (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file()
    return folder


@pytest.fixture(scope="module")
def vllm_server(hf_base, tmp_path_factory):
    """vLLM's OpenAI server on loopback with LoRA on and its runtime LoRA API open, no module loaded at start, float32
    like PEFT (EVO_VLLM_URL: one already running, started the same way, while working on these tests)."""
    if os.environ.get("EVO_VLLM_URL"):
        yield os.environ["EVO_VLLM_URL"]
        return
    from evo_tr.bench import vllm_server as start_vllm
    from evo_tr.errors import EvoError

    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    try:
        with start_vllm(vllm_python(), hf_base, MODEL, say=lambda _: None, dtype="float32", max_model_len=1024, log=log) as (url, _):
            yield url
    except EvoError as exc:
        pytest.fail(f"{exc.message} {exc.hint or ''}")


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def served(url: str) -> list[str]:
    import httpx

    return [m["id"] for m in httpx.get(f"{url}/models", timeout=10).json()["data"]]


def test_publish_then_a_turn_through_vllm_uses_the_adapter_like_peft(vllm_server, evo_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    register_random_adapter(home, "python_coder", torch_home=evo_home)
    env = {"EVO_HOME": str(home), "EVO_ENGINE__BACKEND": "openai", "EVO_ENGINE__URL": vllm_server, "EVO_ENGINE__REMOTE_MODEL": MODEL,
           "EVO_GENERATION__TEMPERATURE": "0", "EVO_GENERATION__SEED": "0", "EVO_GENERATION__MAX_TOKENS": "16", "EVO_KNOWLEDGE__ENABLED": "false"}

    # publish: the server now lists the module, under the expert's name, with the base as its parent
    printed = run_evo("adapters", "publish", "python_coder", "--print", "--base", "/models/base", env=env)
    assert printed.returncode == 0 and "--enable-lora" in printed.stdout and "python_coder=" in printed.stdout, printed.stderr
    assert "python_coder" not in served(vllm_server)
    pub = run_evo("adapters", "publish", "python_coder", "--json", env=env)
    assert pub.returncode == 0, pub.stderr
    [published] = json.loads(pub.stdout)["published"]
    assert published["name"] == "python_coder" and published["version"] == "v1" and published["path"].endswith("v1/peft")
    assert "python_coder" in served(vllm_server)
    doctor = {c["name"]: c for c in json.loads(run_evo("doctor", "--json", env=env).stdout)["checks"]}
    assert doctor["remote engine"]["status"] == "ok" and "python_coder" in doctor["remote engine"]["detail"]

    # the remote backend's stream with the adapter starts like PEFT's own greedy output, and differs from the base's
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(home=home, model=MODEL)
    version = registry(settings).active("python_coder")
    remote = load_engine(settings, owned=False)
    remote.attach_adapter(version)
    settings_torch = load_settings(home=evo_home, model=MODEL)
    settings_torch.engine.backend = "transformers"
    peft = load_engine(settings_torch, owned=False)
    peft.attach_adapter(version)
    try:
        with_lora = remote.chat_stream(MESSAGES, GREEDY, adapter="python_coder").text()
        base = remote.chat_stream(MESSAGES, GREEDY).text()
        peft_lora = peft.chat_stream(MESSAGES, GREEDY, adapter="python_coder").text()
        peft_base = peft.chat_stream(MESSAGES, GREEDY).text()
        first = lambda text: remote.tokenize(text)[:FIRST_TOKENS]  # noqa: E731
        report_row("vLLM against PEFT (greedy, SmolLM2 float32, 16 tokens)", {
            "answer": "with the LoRA", "tokens_equal_to_peft": _common_prefix(remote.tokenize(with_lora), remote.tokenize(peft_lora)),
            "differs_from_base": with_lora != base})
        report_row("vLLM against PEFT (greedy, SmolLM2 float32, 16 tokens)", {
            "answer": "base", "tokens_equal_to_peft": _common_prefix(remote.tokenize(base), remote.tokenize(peft_base)), "differs_from_base": False})
        assert with_lora != base
        assert first(with_lora) == first(peft_lora), (with_lora, peft_lora)
        assert first(base) == first(peft_base), (base, peft_base)  # the base agrees too: the same weights on both
    finally:
        remote.close()
        peft.close()

    # a full turn: routed to python_coder, answered by the published module; without it the answer is the base's
    turn = run_evo("ask", "--json", CODE, env=env)
    assert turn.returncode == 0, turn.stderr
    out = json.loads(turn.stdout)
    assert out["expert"] == "python_coder" and out["adapter"] == "python_coder" and out["answer"].strip()
    off = run_evo("adapters", "activate", "python_coder", "none", env=env)  # withdraws the module from vLLM
    assert off.returncode == 0, off.stderr
    assert "python_coder" not in served(vllm_server)
    base_turn = run_evo("ask", "--json", CODE, env=env)
    assert base_turn.returncode == 0, base_turn.stderr
    base_out = json.loads(base_turn.stdout)
    assert base_out["adapter"] is None and base_out["answer"] != out["answer"]
    back = run_evo("adapters", "rollback", "python_coder", env=env)  # re-publishes v1
    assert back.returncode == 0 and "v1" in back.stdout, back.stderr
    assert "python_coder" in served(vllm_server)
    again = json.loads(run_evo("ask", "--json", CODE, env=env).stdout)
    assert again["adapter"] == "python_coder" and again["answer"] == out["answer"]  # greedy: the same module, the same answer


def test_a_new_version_replaces_the_module_in_place_and_a_bad_folder_leaves_the_pointer(vllm_server, evo_home, tmp_path):
    home = tmp_path / "home"
    register_random_adapter(home, "python_coder", torch_home=evo_home)
    env = {"EVO_HOME": str(home), "EVO_ENGINE__BACKEND": "openai", "EVO_ENGINE__URL": vllm_server, "EVO_ENGINE__REMOTE_MODEL": MODEL,
           "EVO_ENGINE__LORA_DIR": str(tmp_path / "shared-loras")}
    first = run_evo("adapters", "activate", "python_coder", "v1", env=env)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "shared-loras" / "python_coder" / "v1" / "adapter_config.json").is_file()  # copied to the shared folder
    # v2: a version whose PEFT weights are broken; vLLM refuses it, the pointer stays on v1
    reg = registry(load_settings(home=home, model=MODEL))
    staging = home / "staging-broken"
    shutil.copytree(reg.get("python_coder", "v1").path, staging)
    (staging / "peft" / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    meta = json.loads((staging / "metadata.json").read_text())
    reg_plain = type(reg)(reg.root)  # registered without publishing: the broken version exists only here
    reg_plain.register("python_coder", staging, meta, activate=False)
    refused = run_evo("adapters", "activate", "python_coder", "v2", env=env)
    assert refused.returncode == 2 and "refused" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert (home / "adapters" / "python_coder" / "active").read_text().strip() == "v1"
    assert "python_coder" in served(vllm_server)


def test_the_nights_promotion_publishes_the_new_version_to_vllm(vllm_server, evo_home, tmp_path):
    """retrain → gate → promote, with the engine remote: the promoted version is what vLLM serves for the expert."""
    import httpx

    from evo_tr.experts.data import packaged_dir
    from evo_tr.lifecycle.night import retrain_expert

    from .test_lifecycle import _retrain_settings

    settings = _retrain_settings(tmp_path / "home", evo_home)
    (tmp_path / "home" / "models").mkdir(parents=True)
    settings.engine.backend, settings.engine.url, settings.engine.remote_model = "openai", vllm_server, MODEL
    settings.night.retrain_max_steps, settings.night.gate_margin, settings.night.gate_min_gain_share = 12, 0.0, 0.0
    registry(settings).activate("tr_chat", "none")  # the base answers now (the shipped tr_chat is for another base)
    rows = [json.loads(line) for f in sorted(packaged_dir("tr_chat").glob("*.jsonl")) for line in f.read_text().splitlines() if line.strip()]
    small = tmp_path / "tr_chat_small.jsonl"
    small.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[::8]) + "\n")
    result = retrain_expert(settings, "tr_chat", [], base_data=small)
    assert result["action"] == "promoted", result  # 12 steps on its own data beat the bare base on held-out loss
    cards = {m["id"]: m for m in httpx.get(f"{vllm_server}/models", timeout=10).json()["data"]}
    assert "tr_chat" in cards and cards["tr_chat"]["parent"] == MODEL
    assert cards["tr_chat"]["root"].endswith(f"tr_chat/{result['candidate']}/peft"), cards["tr_chat"]


def test_evo_serve_in_front_of_vllm_switches_versions_over_http(vllm_server, evo_home, tmp_path):
    """The deployment's front end: `evo serve` with the engine on vLLM; the admin endpoints publish what they switch."""
    import httpx
    import openai

    from .test_serve import KEY, start_server, stop

    home = tmp_path / "front"
    register_random_adapter(home, "python_coder", torch_home=evo_home)
    extra = {"EVO_ENGINE__BACKEND": "openai", "EVO_ENGINE__URL": vllm_server, "EVO_ENGINE__REMOTE_MODEL": MODEL}
    assert run_evo("adapters", "publish", "python_coder", env={"EVO_HOME": str(home), **extra}).returncode == 0
    srv = start_server(home, extra=extra)
    http = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
    client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=KEY)
    ask = lambda model: client.chat.completions.create(  # noqa: E731
        model=model, messages=[{"role": "user", "content": "Write a Python function that reverses a list."}], temperature=0, seed=0, max_tokens=12)
    try:
        coder = ask("evo-tr/python_coder").choices[0].message.content
        off = http.post("/v1/evo/adapters/python_coder/activate", json={"version": "none"})
        assert off.status_code == 200 and off.json()["active"] is None and off.json()["live"], off.text
        assert "python_coder" not in served(vllm_server)
        assert "evo-tr/python_coder" not in [m.id for m in client.models.list().data]  # the router's code intents get the base now
        assert ask("evo-tr/base").choices[0].message.content != coder
        back = http.post("/v1/evo/adapters/python_coder/rollback")
        assert back.status_code == 200 and back.json()["active"] == "v1" and back.json()["live"], back.text
        assert "python_coder" in served(vllm_server)
        assert ask("evo-tr/python_coder").choices[0].message.content == coder
        missing = http.post("/v1/evo/adapters/python_coder/activate", json={"version": "v9"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    finally:
        http.close()
        stop(srv)
