"""`evo data import`: Hugging Face dataset files (Aya, Alpaca or chat rows) → cleaned chat-JSONL for an expert."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evo_tr.config import Settings
from evo_tr.errors import EvoError
from evo_tr.experts.data import ChatExample, _parse_messages, alpaca_to_chat, clean
from evo_tr.models.store import Progress, download_hub_file

FORMATS = ("auto", "aya", "alpaca", "chat")


@dataclass
class DataImportResult:
    source: str
    downloaded: Path
    output: Path
    rows: int
    kept_language: int
    converted: int
    written: int
    skipped: list[str]

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["downloaded"], out["output"] = str(self.downloaded), str(self.output)
        out["skipped"] = self.skipped[:20]
        out["skipped_count"] = len(self.skipped)
        return out


def parse_ref(ref: str) -> tuple[str, str]:
    """hf:OWNER/NAME/PATH/TO/FILE → (OWNER/NAME, PATH/TO/FILE)."""
    body = ref.removeprefix("hf:")
    parts = body.split("/")
    if not ref.startswith("hf:") or len(parts) < 3 or not all(parts):
        raise EvoError(f"Not a dataset reference: {ref!r}.", "Use hf:OWNER/NAME/FILE, e.g. hf:CohereForAI/aya_dataset/data/train.jsonl")
    return "/".join(parts[:2]), "/".join(parts[2:])


def _read_rows(path: Path) -> list[Any]:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise EvoError("This dataset file is Parquet.", "Install pyarrow (`pip install pyarrow`) or import a .jsonl file.") from exc
        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return json.loads(text)
    rows = []
    for line in text.splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                rows.append(None)
    return rows


def convert_row(row: Any, fmt: str) -> dict[str, Any]:
    """One dataset row → {"messages": [...]}; raises ValueError with the reason when it cannot."""
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    if fmt == "auto":
        fmt = "aya" if "inputs" in row and "targets" in row else "alpaca" if "instruction" in row else "chat"
    if fmt == "aya":
        if not isinstance(row.get("inputs"), str) or not isinstance(row.get("targets"), str):
            raise ValueError("Aya rows need string 'inputs' and 'targets'")
        return {"messages": [{"role": "user", "content": row["inputs"]}, {"role": "assistant", "content": row["targets"]}]}
    if fmt == "alpaca":
        return alpaca_to_chat(row)
    return row


def import_hf_dataset(
    settings: Settings,
    ref: str,
    expert: str,
    *,
    fmt: str = "auto",
    language: str | None = None,
    limit: int | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    progress: Progress | None = None,
) -> DataImportResult:
    if fmt not in FORMATS:
        raise EvoError(f"Unknown format {fmt!r}.", f"Use one of: {', '.join(FORMATS)}.")
    repo, filename = parse_ref(ref)
    downloaded = settings.home / "datasets" / repo / filename
    download_hub_file(repo, filename, downloaded, repo_type="dataset", token=token, endpoint=endpoint, progress=progress)
    rows = _read_rows(downloaded)
    wanted = [r for r in rows if language is None or (isinstance(r, dict) and str(r.get("language", "")).lower() == language.lower())]
    examples: list[ChatExample] = []
    skipped: list[str] = []
    for number, row in enumerate(wanted, start=1):
        try:
            examples.append(ChatExample(_parse_messages(convert_row(row, fmt))))
        except ValueError as exc:
            skipped.append(f"row {number}: {exc}")
        if limit and len(examples) >= limit:
            break
    kept, _ = clean(examples)
    out_dir = settings.home / "training" / expert
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"imported-{repo.replace('/', '__')}.jsonl"
    tmp = output.with_name(output.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        for ex in kept:
            fh.write(json.dumps({**ex.as_dict(), "source": ref}, ensure_ascii=False) + "\n")
    tmp.replace(output)
    return DataImportResult(ref, downloaded, output, len(rows), len(wanted), len(examples), len(kept), skipped)
