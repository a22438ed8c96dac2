"""The `evo` commands end to end: real subprocesses, real model, real terminal for chat."""

from __future__ import annotations

import json
import os
import time

import pytest

import pexpect

from tests.conftest import EVO, MODEL, run_evo, run_json


def test_ask_json_returns_an_answer():
    out = run_json("ask", "--json", "--max-tokens", "16", "--temperature", "0", "Write a Python function is_prime(n).")
    assert out["model"] == MODEL
    assert out["answer"].strip()
    assert 1 <= out["completion_tokens"] <= 16
    assert out["prompt_tokens"] > 0 and out["ttft_ms"] > 0
    assert out["finish_reason"] in ("stop", "length")


def test_ask_reads_stdin_and_streams_plain_text():
    proc = run_evo("ask", "--max-tokens", "8", "--temperature", "0", input="Say hello.\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_ask_empty_message_is_a_clear_error():
    proc = run_evo("ask", "   ")
    assert proc.returncode == 2
    assert "empty" in proc.stderr and "Traceback" not in proc.stderr


def test_chat_piped_session_handles_commands():
    script = "\n".join(["", "Hello!", "/bogus", "/status", "/clear", "/help", "/quit", "never answered"]) + "\n"
    proc = run_evo("chat", input=script, env={"EVO_GENERATION__MAX_TOKENS": "8"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Unknown command /bogus" in out and "/help" in out and "/quit" in out
    assert "History cleared" in out
    assert MODEL in out  # banner and /status
    assert "never answered" not in out


def test_chat_long_message_gets_visible_truncation_notice():
    long = "kelime " * 3000
    proc = run_evo("chat", input=long + "\n/quit\n", env={"EVO_ENGINE__N_CTX": "512", "EVO_GENERATION__MAX_TOKENS": "4"})
    assert proc.returncode == 0, proc.stderr
    assert "too long for the context window" in proc.stdout


def test_chat_ctrl_c_stops_answer_and_returns_to_prompt(tmp_path):
    """On a real pseudo-terminal: Ctrl-C during an answer interrupts it; the chat goes on."""
    env = {**os.environ, "EVO_GENERATION__MAX_TOKENS": "1500", "EVO_GENERATION__TEMPERATURE": "0", "TERM": "dumb"}
    child = pexpect.spawn(EVO[0], EVO[1:] + ["chat"], env=env, encoding="utf-8", timeout=120, dimensions=(40, 120))
    try:
        child.expect("› ")
        child.sendline("Write a very long story about a dragon and a knight, with many chapters.")
        child.expect("chapters.", timeout=30)  # our own line echoed back
        # With TERM=dumb, Rich prints the Markdown only when the answer ends, so wait a fixed time instead
        # of for text: 1500 tokens take well over 3 s, so the answer is still being generated.
        time.sleep(3)
        child.sendintr()
        child.expect("interrupted", timeout=60)
        child.expect("› ")
        child.sendline("/quit")
        child.expect(pexpect.EOF, timeout=60)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_doctor_json_reports_checks():
    out = run_json("doctor", "--json")
    names = {c["name"]: c for c in out["checks"]}
    assert {"python", "ram", "disk", "backend:llama_cpp", "accelerator", f"model:{MODEL}", "memory"} <= names.keys()
    assert names["memory"]["status"] == "ok" and "embedded" in names["memory"]["detail"]
    assert names["backend:llama_cpp"]["status"] == "ok"
    assert names[f"model:{MODEL}"]["status"] == "ok"
    sandbox = names["sandbox"]  # measured by a probe run through the real sandbox
    assert sandbox["status"] in ("ok", "warn") and "files " in sandbox["detail"] and "exec " in sandbox["detail"]
    if sandbox["status"] == "ok":
        assert "landlock" in sandbox["detail"] and "network namespace" in sandbox["detail"]
    assert out["ok"] is True


def test_doctor_reports_missing_model_with_fix():
    proc = run_evo("doctor", "--json", env={"EVO_MODEL": "qwen2.5-3b-instruct"})
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    check = next(c for c in out["checks"] if c["name"] == "model:qwen2.5-3b-instruct")
    assert check["status"] == "fail" and "evo models pull qwen2.5-3b-instruct" in check["fix"]


def test_bench_runs_one_section_as_one_json_object():
    out = run_json("bench", "--json", "--runs", "1", "--only", "router", timeout=300)
    assert out["sections"] == ["router"] and out["runs"] == 1 and out["machine"]["cpus"] >= 1
    assert out["router_accuracy"] >= 0.95 and out["router_latency_ms_p50"] > 0 and "decode_tok_s" not in out


@pytest.mark.slow
def test_bench_json_has_every_section():
    small = {"EVO_BENCH__DECODE_TOKENS": "16", "EVO_BENCH__MEMORY_SIZE": "300", "EVO_BENCH__MEMORY_QUERIES": "30",
             "EVO_BENCH__TURN_MEMORY_SIZE": "100", "EVO_BENCH__FOLLOWUP_TOKENS": "16", "EVO_BENCH__KNOWLEDGE_CHUNKS": "40",
             "EVO_BENCH__KNOWLEDGE_QUERIES": "20"}
    from .test_vllm import vllm_python

    out = run_json("bench", "--json", "--runs", "1", env={**small, "EVO_BENCH__VLLM_PYTHON": str(vllm_python())}, timeout=1200)
    assert out["sections"] == ["engine", "router", "memory", "knowledge", "experts", "turn", "serve", "ui", "night", "remote", "vllm"]
    for key in ("load_s", "ttft_ms_p50", "decode_tok_s", "prompt_tok_s", "raw_ttft_ms_p50", "raw_decode_tok_s", "decode_vs_raw"):
        assert isinstance(out[key], (int, float)) and out[key] > 0, key
    assert out["model"] == MODEL
    assert out["router_accuracy"] >= 0.95 and out["router_macro_f1"] >= 0.95
    for key in ("router_latency_ms_p50", "router_latency_ms_p99", "router_rss_mb"):
        assert out[key] > 0, key
    assert out["memory_store_size"] == 300
    assert 0 < out["memory_search_ms_p50"] <= out["memory_search_ms_p99"]
    assert out["memory_add_per_s"] > 0
    assert out["memory_recall_at_3"] >= 0.9
    assert out["memory_contamination_rate"] == 0 and out["memory_fact_current"] == 1.0
    assert out["knowledge_document_chunks"] == 40 and out["knowledge_pack_entries"] >= 1100
    assert 0 < out["knowledge_search_ms_p50"] <= out["knowledge_search_ms_p99"] and out["knowledge_ingest_chunks_per_s"] > 0
    assert out["knowledge_recall_at_3"] >= 0.9
    assert out["adapter_switch_ms_p50"] > 0 and out["adapter_set_ms_p50"] > 0
    assert out["decode_tok_s_with_adapter"] > 0 and out["adapter_decode_ratio"] > 0
    assert out["train_step_s"] > 0 and out["train_model"] == "smollm2-135m-instruct"
    assert out["turn_memory_store_size"] == 100
    assert 0 < out["turn_overhead_ms_p50"] <= out["turn_overhead_ms_p99"]
    assert out["e2e_ttft_ms_p50"] > 0 and out["e2e_raw_ttft_ms_p50"] > 0 and out["e2e_ttft_vs_raw"] > 0
    assert out["followup_ttft_ms_turn1"] > 0 and out["followup_ttft_ms_turn10"] > 0 and out["followup_ttft_growth"] > 0
    assert out["followup_history_tokens_turn10"] > 0
    assert out["serve_ttft_ms_p50"] > 0 and out["serve_vs_inproc_ttft"] > 0 and out["serve_concurrent_tok_s_total"] > 0
    assert 0 < out["ui_first_load_kb"] <= 300 and out["ui_ttft_vs_api"] > 0 and out["ui_own_ms_p50"] is not None
    assert out["night_s_per_100_turns"] > 0 and out["night_memories_added"] >= 8 and out["night_code_blocks_run"] == 40
    for prefix in ("remote_", "vllm_"):  # the remote backend vs the same server called directly, llama.cpp's server and vLLM
        for key in ("ttft_ms_p50", "decode_tok_s", "direct_decode_tok_s", "vs_direct_decode"):
            assert out[prefix + key] > 0, prefix + key
    for prefix in ("llama_server_", "vllm_"):
        assert out[prefix + "single_tok_s"] > 0 and out[prefix + "concurrent4_tok_s"] > 0 and out[prefix + "concurrency_gain"] > 0


def test_bench_vllm_section_with_a_missing_virtualenv_is_a_clear_error():
    proc = run_evo("bench", "--json", "--only", "vllm", env={"EVO_BENCH__VLLM_PYTHON": "/nonexistent/vllm/bin/python"})
    assert proc.returncode == 2 and "make vllm" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_bench_rejects_unknown_section():
    proc = run_evo("bench", "--only", "nope")
    assert proc.returncode == 2 and "Unknown bench section" in proc.stderr


def test_version_and_help():
    assert "evo-tr" in run_evo("--version").stdout
    help_text = run_evo("--help").stdout
    for command in ("chat", "ask", "models", "config", "doctor", "bench"):
        assert command in help_text
