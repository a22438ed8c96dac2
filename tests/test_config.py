"""Settings: defaults, TOML file, EVO_* env overrides, provenance, clear errors."""

from __future__ import annotations

import pytest

from evo_tr.config import describe_settings, load_settings
from evo_tr.errors import EvoError
from tests.conftest import run_json


def test_defaults_and_home_from_env(evo_home, monkeypatch):
    monkeypatch.delenv("EVO_MODEL")
    settings = load_settings()
    assert settings.home == evo_home
    assert settings.model == "qwen2.5-coder-0.5b-instruct"
    assert settings.engine.n_threads == 1
    assert settings.models_dir == evo_home / "models"


def test_toml_then_env_precedence(tmp_path, monkeypatch):
    (tmp_path / "evo.toml").write_text('[engine]\nn_threads = 2\nn_ctx = 2048\n[generation]\ntemperature = 0.1\n')
    monkeypatch.setenv("EVO_ENGINE__N_CTX", "1024")
    settings = load_settings()
    assert settings.engine.n_threads == 2
    assert settings.engine.n_ctx == 1024
    sources = {row.key: row.source for row in describe_settings(settings)}
    assert sources["engine.n_threads"].startswith("file ")
    assert sources["engine.n_ctx"] == "env EVO_ENGINE__N_CTX"
    assert sources["generation.temperature"].startswith("file ")
    assert sources["generation.top_p"] == "default"
    assert sources["home"] == "env EVO_HOME"


def test_invalid_values_give_readable_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EVO_ENGINE__N_THREADS", "0")
    with pytest.raises(EvoError) as info:
        load_settings()
    assert "engine.n_threads" in info.value.message
    assert "evo config show" in info.value.hint


def test_broken_toml_is_reported(tmp_path):
    (tmp_path / "evo.toml").write_text("[engine\nn_threads = 2\n")
    with pytest.raises(EvoError) as info:
        load_settings()
    assert "not valid TOML" in info.value.message


def test_config_show_json_cli(tmp_path):
    (tmp_path / "evo.toml").write_text("[generation]\nmax_tokens = 77\n")
    out = run_json("config", "show", "--json")
    rows = {r["key"]: r for r in out["settings"]}
    assert rows["generation.max_tokens"]["value"] == 77
    assert rows["generation.max_tokens"]["source"].startswith("file ")
    assert rows["model"]["source"] == "env EVO_MODEL"


def test_partial_expert_mapping_keeps_defaults(tmp_path):
    (tmp_path / "evo.toml").write_text('[router.experts]\ncode_debug = "base"\n')
    experts = load_settings().router.experts
    assert experts["code_debug"] == "base" and experts["code_python"] == "python_coder"
