"""Rebuild the knowledge pack's manifest and shipped vectors after editing its JSONL files.

    .venv/bin/python scripts/build_knowledge_pack.py [--version 2026.12.1]

Checks every entry (the same checks as the test), then embeds each entry's text with the project's e5
embedder (symmetric query mode, as the store embeds passages) and writes src/evo_tr/data/knowledge/pack/
embeddings.npy (float16) and pack.json (version, counts, content hash, embedder). About half a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from evo_tr.embeddings import get_embedder  # noqa: E402
from evo_tr.knowledge.pack import FILES, content_hash, load_pack, pack_dir  # noqa: E402
from evo_tr.knowledge.validate import check_files  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version", help="Pack version (default: keep pack.json's, or 1 for a new pack).")
    args = parser.parse_args()
    problems = [p for name, kind in FILES for p in check_files([pack_dir() / name], kind)]
    if problems:
        print("\n".join(problems))
        return 1
    entries = load_pack()
    old = json.loads((pack_dir() / "pack.json").read_text()) if (pack_dir() / "pack.json").is_file() else {}
    embedder = get_embedder()
    vectors = []
    for start in range(0, len(entries), 64):
        vectors.append(embedder.query([e.text for e in entries[start : start + 64]]))
        print(f"\r{min(start + 64, len(entries))}/{len(entries)}", end="", flush=True)
    print()
    np.save(pack_dir() / "embeddings.npy", np.concatenate(vectors).astype(np.float16))
    manifest = {
        "name": "Türkçe bilgi paketi",
        "version": args.version or old.get("version", "1"),
        "entries": len(entries),
        "by_kind": dict(Counter(e.kind for e in entries)),
        "content_sha256": content_hash(entries),
        "embedder": embedder.info.name,
        "license": "Apache-2.0",
    }
    (pack_dir() / "pack.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(manifest, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
