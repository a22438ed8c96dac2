"""The code gate: when a python_coder candidate is promoted. Pre-registered in issue 26, written before any new
candidate was trained, and used by both `evo train` and the night's retrain.

The expert exists because the base codes worse when asked in Turkish (Turkish HumanEval with a Turkish request vs
English HumanEval, one run; see the README), so it is promoted only if

(a) on Turkish HumanEval (Turkish docstrings, Turkish request) it passes significantly more problems than the
    base: one-sided exact McNemar test on the paired outcomes, p < `night.code_gate_alpha` (0.05); and
(b) on English HumanEval it is non-inferior: problems it loses minus problems it gains ≤
    `night.code_gate_english_margin` (3 of 164).

Both comparisons are reported with the flipped task ids. No weight, scale or seed is tuned on these sets: the
recipe is chosen on a validation split of the training tasks, and the gate only judges it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from evo_tr.config import Settings
from evo_tr.experts.export import LoraFiles


@dataclass(frozen=True)
class Paired:
    """Candidate vs base on one problem set, problem by problem."""

    problems: int
    base_passed: int
    candidate_passed: int
    gained: list[str]  # only the candidate passes
    lost: list[str]  # only the base passes
    p_greater: float  # one-sided exact McNemar: is the candidate better?

    @classmethod
    def of(cls, base: dict[str, bool], candidate: dict[str, bool]) -> "Paired":
        from evo_tr.experts.evaluate import paired_comparison

        common = [t for t in base if t in candidate]
        c = paired_comparison(common, [base[t] for t in common], [candidate[t] for t in common], alternative="greater", digits=6)
        return cls(len(common), sum(base[t] for t in common), sum(candidate[t] for t in common), c["only_adapter_passes"],
                   c["only_base_passes"], c["mcnemar_p"])


@dataclass(frozen=True)
class CodeGateDecision:
    promote: bool
    reason: str
    turkish: Paired
    english: Paired
    alpha: float
    english_margin: int

    def as_dict(self) -> dict[str, Any]:
        return {"metric": "code_gate", **asdict(self)}


def decide(turkish: Paired, english: Paired, *, alpha: float, english_margin: int) -> CodeGateDecision:
    """(a) a significant Turkish gain and (b) English non-inferiority, both required."""
    significant = turkish.p_greater < alpha
    net_loss = len(english.lost) - len(english.gained)
    keeps_english = net_loss <= english_margin
    if significant and keeps_english:
        reason = "promoted"
    elif not significant:
        reason = (f"Turkish HumanEval: +{len(turkish.gained)} / -{len(turkish.lost)} problems vs the base, one-sided McNemar "
                  f"p = {turkish.p_greater:.3g}, not below {alpha}")
    else:
        reason = f"English HumanEval: {net_loss} problems lost net (lost {len(english.lost)}, gained {len(english.gained)}), more than {english_margin}"
    return CodeGateDecision(significant and keeps_english, reason, turkish, english, alpha, english_margin)


def run_code_gate(settings: Settings, candidate, *, model: str | None = None, say: Callable[[str], None] = lambda _: None) -> CodeGateDecision:
    """Base vs `candidate` (a registered, not necessarily active, adapter version) on Turkish HumanEval with a
    Turkish request and on English HumanEval, in one run each, then `decide`."""
    from evo_tr.engine import load_engine
    from evo_tr.experts.evaluate import eval_python, load_problem_set, outcomes

    cfg = settings.night
    files = LoraFiles(f"{candidate.expert}-candidate", candidate.gguf, candidate.peft, candidate.scale)
    engine = None
    if cfg.code_gate_workers <= 1:
        engine = load_engine(settings, model)
        engine.attach_adapter(files)
    try:
        paired = {}
        for name, lang in (("humaneval-tr", "tr"), ("humaneval", "en")):
            say(f"code gate: {name} ({lang} request), base vs {candidate.expert} {candidate.tag}")
            result = eval_python(settings, engine, [None, files.expert], workers=cfg.code_gate_workers, model=model, say=say,
                                 problem_set=load_problem_set(name, cfg.code_gate_limit), instruction_lang=lang, extra_adapters=[files])
            paired[lang] = Paired.of(outcomes(result, "base"), outcomes(result, files.expert))
    finally:
        if engine is not None:
            engine.close()
    return decide(paired["tr"], paired["en"], alpha=cfg.code_gate_alpha, english_margin=cfg.code_gate_english_margin)
