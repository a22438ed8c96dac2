"""A new user's first day: everyday Turkish questions asked one after another in one fresh data dir.

Each question is a separate `evo ask --json` process (a new session, as a person asking from the
terminal gets), so nothing reaches a later answer except through long-term memory. For every answer the
script records which memories entered its prompt and which earlier answers' claims it repeats:
- `prompt_has_earlier_answer`: a memory injected into the prompt carries text of an earlier answer
  (the contamination itself, read from what the orchestrator reports);
- `repeats`: numbers (3+ digits, e.g. years) and capitalised names that occur in an earlier answer and in
  this answer but not in this question or in the answer's own topic words: a cheap pointer for the hand read
  of the closing note, not a judgement.

    .venv/bin/python scripts/new_user_trial.py --out /tmp/trial.jsonl            # default model, defaults
    .venv/bin/python scripts/new_user_trial.py --questions my.txt --home /tmp/h   # other questions, kept home
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

QUESTIONS = (
    "Türkiye Cumhuriyeti hangi yıl ilan edildi?",
    "İstanbul ne zaman fethedildi?",
    "Çanakkale Zaferi hangi yıl kazanıldı?",
    "Türkiye'nin en yüksek dağı hangisidir?",
    "Türkiye'nin en uzun nehri hangisidir?",
    "Türk kahvesi nasıl pişirilir?",
    "Mercimek çorbası nasıl yapılır?",
    "Kahvaltıda ne yemeliyim?",
    "Ankara'da gezilecek yerler nelerdir?",
    "Kapadokya nerededir?",
    "Ramazan Bayramı'nda neler yapılır?",
    "Nazar boncuğu ne işe yarar?",
    "Yunus Emre kimdir?",
    "Günde kaç bardak su içmeliyim?",
    "Uykusuzluk için ne önerirsin?",
    "Kışın hangi sebzeler yenir?",
    "Kedi beslerken nelere dikkat etmeliyim?",
    "Evde fesleğen nasıl yetiştirilir?",
    "Satranç nasıl oynanır?",
    "Tatil için Ege'de nereye gidebilirim?",
)
NUMBER = re.compile(r"\b\d{3,}\b")
NAME = re.compile(r"\b[A-ZÇĞİÖŞÜ][a-zçğıöşü]{3,}")


def claims(text: str) -> set[str]:
    return set(NUMBER.findall(text)) | {m[:5] for m in NAME.findall(text)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSONL file with one record per question.")
    parser.add_argument("--home", type=Path, help="Data dir to use (default: a fresh temporary one).")
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("EVO_MODELS", Path.home() / ".local/share/evo-tr/models")),
                        help="Provisioned models folder to link into the fresh home.")
    parser.add_argument("--questions", type=Path, help="One question per line (default: the 20 built in).")
    parser.add_argument("--seed", default="0", help="Generation seed (the default temperature stays).")
    args = parser.parse_args()
    questions = [q.strip() for q in args.questions.read_text(encoding="utf-8").splitlines() if q.strip()] if args.questions else list(QUESTIONS)
    home = args.home or Path(tempfile.mkdtemp(prefix="evo-trial-"))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(args.models.resolve(), target_is_directory=True)
    env = {**os.environ, "EVO_HOME": str(home), "EVO_CONFIG": str(home / "evo.toml"), "EVO_GENERATION__SEED": args.seed}
    earlier: list[tuple[int, str, set[str]]] = []
    rows = []
    with open(args.out, "w", encoding="utf-8") as out:
        for i, question in enumerate(questions, start=1):
            proc = subprocess.run([sys.executable, "-m", "evo_tr", "ask", "--json", question], capture_output=True, text=True, env=env, timeout=600)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return proc.returncode
            result = json.loads(proc.stdout)
            answer = result["answer"]
            injected = [m["text"] for m in result["memories"]]
            from_answers = [n for n, a, _ in earlier if any(_shares(a, m) for m in injected)]
            mine = claims(answer) - claims(question)
            repeats = sorted({c for n, _, cs in earlier for c in cs & mine})
            row = {"n": i, "question": question, "answer": answer, "intent": result["intent"], "expert": result["expert"],
                   "memories": injected, "memory_types": [m["metadata"]["type"] for m in result["memories"]],
                   "prompt_has_earlier_answer": from_answers, "repeats": repeats}
            rows.append(row)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            earlier.append((i, answer, claims(answer) - claims(question)))
            flag = f"earlier answers in prompt: {from_answers}" if from_answers else "clean prompt"
            print(f"{i:2d}. {question}\n    [{result['intent']}/{result['expert']}; {flag}; repeats {repeats}]\n    {answer[:300]!r}", flush=True)
    contaminated = sum(1 for r in rows if r["prompt_has_earlier_answer"])
    repeating = sum(1 for r in rows if r["repeats"])
    print(json.dumps({"questions": len(rows), "prompts_with_an_earlier_answer": contaminated, "answers_with_repeated_claims_heuristic": repeating,
                      "home": str(home)}, ensure_ascii=False))
    return 0


def _shares(answer: str, memory: str) -> bool:
    """A memory carries an answer when a 40-character stretch of the answer occurs in it."""
    flat_a, flat_m = " ".join(answer.split()), " ".join(memory.split())
    probe = flat_a[:40]
    return len(probe) >= 20 and probe in flat_m


if __name__ == "__main__":
    raise SystemExit(main())
