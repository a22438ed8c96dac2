"""Build src/evo_tr/data/training/tr_chat/*.jsonl from the hand-written texts in scripts/tr_chat/.

Idioms and proverbs give two examples each (meaning; usage), conversation lines one each (multi-turn
lines become multi-turn examples). Run: .venv/bin/python scripts/build_tr_chat.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from evo_tr.text import turkish_lower  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "scripts" / "tr_chat"
OUT = ROOT / "src" / "evo_tr" / "data" / "training" / "tr_chat"


def rows(name: str) -> list[list[str]]:
    out = []
    for line in (SRC / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            out.append([p.strip() for p in line.split(" | ")])
    return out


def chat(*turns: str, kind: str) -> dict:
    roles = ["user", "assistant"] * (len(turns) // 2)
    return {"messages": [{"role": r, "content": t} for r, t in zip(roles, turns)], "kind": kind}


def build() -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = {"deyimler": [], "atasozleri": [], "sohbet": []}
    for i, (idiom, meaning, example) in enumerate(rows("deyimler.txt")):
        ask = f"\"{idiom}\" deyimi ne anlama gelir?" if i % 2 == 0 else f"\"{idiom}\" ne demek?"
        files["deyimler"].append(chat(ask, f"\"{idiom[0].upper() + idiom[1:]}\", {meaning} anlamına gelen bir deyimdir. Örneğin: \"{example}\"", kind="deyim_anlam"))
        files["deyimler"].append(chat(f"\"{idiom}\" deyimini bir cümlede kullanır mısın?", f"Tabii: \"{example}\" Burada deyim, {meaning} anlamında kullanılıyor.", kind="deyim_cumle"))
    for i, (proverb, meaning, when) in enumerate(rows("atasozleri.txt")):
        ask = f"\"{proverb}\" atasözünün anlamı nedir?" if i % 2 == 0 else f"\"{proverb.rstrip('.')}\" ne demek?"
        files["atasozleri"].append(chat(ask, f"{meaning} Örneğin {turkish_lower(when[0]) + when[1:].rstrip('.')} söylenir.", kind="atasozu_anlam"))
        files["atasozleri"].append(chat(f"\"{proverb}\" sözünü hangi durumda söyleyebilirim?", f"{when.rstrip('.')} söyleyebilirsin. Sözün anlamı şu: {turkish_lower(meaning[0]) + meaning[1:]}", kind="atasozu_durum"))
    for parts in rows("sohbet.txt"):
        category, rest = parts[0], " | ".join(parts[1:])
        turns = [p.strip() for block in rest.split("||") for p in block.split(" | ")]
        files["sohbet"].append(chat(*turns, kind=category))
    return files


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, examples in build().items():
        with open(OUT / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for ex in examples:
                fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
        total += len(examples)
        print(f"{name}: {len(examples)}")
    print(f"total: {total}")


if __name__ == "__main__":
    main()
