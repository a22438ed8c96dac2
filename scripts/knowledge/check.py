"""Check knowledge-pack JSONL files while writing them: .venv/bin/python scripts/knowledge/check.py KIND FILE...

KIND is atasozu, deyim or bilgi. Prints every problem as FILE:LINE: problem and the entry count; exit 1 on problems.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from evo_tr.knowledge.validate import KINDS, check_files  # noqa: E402

if len(sys.argv) < 3 or sys.argv[1] not in KINDS:
    sys.exit(__doc__)
files = [Path(p) for p in sys.argv[2:]]
problems = check_files(files, sys.argv[1])
for p in problems:
    print(p)
count = sum(1 for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip())
print(f"{count} entries, {len(problems)} problems")
sys.exit(1 if problems else 0)
