"""Night mode: read one day of conversations, learn what can be learned, and retrain an expert only behind a gate.

Steps run in order and each is recorded when it finishes, so a crashed run resumes where it stopped and a
second run of the same day adds nothing: analyze → extract → propose → retrain → report. Work inside a step
is recorded per item (a session, a turn) for the same reason. The night never holds the memory store or
the model for long: memory writes are single short locked adds, and chat keeps running meanwhile.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from evo_tr.config import OWNER_ID, Settings
from evo_tr.errors import EvoError
from evo_tr.lifecycle.conversations import ConversationStore, TurnRecord
from evo_tr.sandbox import SandboxLimits, run_python

log = logging.getLogger(__name__)

STEPS = ("analyze", "extract", "propose", "retrain", "report")
CODE_BLOCK = re.compile(r"```(?:python|py)\n(.*?)```", re.DOTALL)
JSON_ARRAY = re.compile(r"\[.*\]", re.DOTALL)
NEGATIVE = ("bad", "fix", "correction", "repeat", "regenerate")
GROUNDING = 0.5  # share of an extracted fact's content stems that must occur in what the user wrote
EXTRACTION_PROMPT = (
    "Aşağıda bir kullanıcının bugün yazdığı mesajlar var. Kullanıcının KENDİSİ hakkında açıkça söylediği kalıcı "
    "bilgileri (ad, yaşadığı yer, iş, aile, tercih, alışkanlık) çıkar. Her birini üçüncü şahısla kısa bir cümle yap. "
    'Yalnızca JSON listesi döndür: [{"text": "Kullanıcının adı Kaan.", "type": "fact"}] — type "fact" ya da '
    '"preference". Bilgi yoksa [] döndür.\n\nMesajlar:\n'
)


@dataclass
class NightContext:
    """What the steps share: the day, its turns, the stores, and the results of earlier steps."""

    settings: Settings
    day: str
    store: ConversationStore
    turns: list[TurnRecord]
    dry_run: bool = False
    say: Callable[[str], None] = lambda _: None
    results: dict[str, Any] = field(default_factory=dict)
    _engine: Any = None
    _memory: Any = None

    def engine(self):
        """The chat model, loaded only if a step needs it (LLM extraction)."""
        if self._engine is None:
            from evo_tr.engine import load_engine

            self._engine = load_engine(self.settings)
        return self._engine

    def memory(self):
        if self._memory is None:
            from evo_tr.memory.store import MemoryStore

            self._memory = MemoryStore(self.settings)
        return self._memory

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


@contextmanager
def night_lock(settings: Settings) -> Iterator[None]:
    """One night run at a time (per data dir); a second one is refused at once, not queued."""
    path = settings.home / "night.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EvoError("Another night run is in progress.", "Wait for it to finish (`evo logs tail` shows its progress).") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- analyze ---------------------------------------------------------------------------------------
def report_days(settings: Settings) -> list[str]:
    """Days with a night report (reports_dir/DAY/report.json), oldest first."""
    folder = settings.reports_dir
    return sorted(p.name for p in folder.iterdir() if (p / "report.json").is_file()) if folder.is_dir() else []


def code_blocks(text: str) -> list[str]:
    return [b for b in CODE_BLOCK.findall(text) if b.strip()]


def analyze(ctx: NightContext) -> dict[str, Any]:
    """Intent mix, misroute candidates, failed answers, and code from the answers run in the sandbox."""
    cfg = ctx.settings.night
    turns = ctx.turns
    by_session: dict[str, list[TurnRecord]] = {}
    for t in turns:
        by_session.setdefault(t.session_id, []).append(t)
    misroutes = []
    for session_turns in by_session.values():
        for i, t in enumerate(session_turns):
            nxt = session_turns[i + 1] if i + 1 < len(session_turns) else None
            reason = None
            if t.route_source == "router" and t.confidence is not None and t.confidence < cfg.misroute_confidence:
                reason = f"low confidence {t.confidence:.2f}"
            elif t.route_source == "router" and t.routed_fallback:
                reason = "router fell back"
            elif nxt is not None and nxt.route_source in ("switch", "request") and nxt.expert != t.expert:
                reason = f"user switched to {nxt.expert} right after"
            if reason:
                misroutes.append({"session": t.session_id, "turn": t.number, "intent": t.intent, "expert": t.expert, "reason": reason, "message": t.message[:200]})
    failures = []
    feedback = {(f.session_id, f.turn): f for t in turns for f in ctx.store.feedback_for(t.session_id, t.number)}
    for t in turns:
        fb = feedback.get((t.session_id, t.number))
        kind = "error" if t.error else "interrupted" if t.interrupted else (fb.kind if fb and fb.negative else None)
        if kind:
            failures.append({"session": t.session_id, "turn": t.number, "kind": kind, "reason": (t.error or (fb.reason if fb else "") or "")[:200],
                             "message": t.message[:200], "answer": t.answer[:300]})
    code = []
    for t in turns:
        for k, block in enumerate(code_blocks(t.answer)):
            key = f"{t.session_id}/{t.number}/{k}"
            done = ctx.store.night_item(ctx.day, "analyze", key)
            if done is None:
                if "input(" in block:  # waits for a user; not something to judge unattended
                    continue
                result = run_python(block, SandboxLimits(timeout_s=cfg.code_timeout_s))
                done = {"session": t.session_id, "turn": t.number, "block": k, "ok": result.ok, "error": result.error_tail[-300:] if not result.ok else "",
                        "code": block[:2000]}
                if not ctx.dry_run:
                    ctx.store.night_item_done(ctx.day, "analyze", key, done)
            code.append(done)
    for c in code:
        if not c["ok"]:
            failures.append({"session": c["session"], "turn": c["turn"], "kind": "code_failed", "reason": c["error"], "message": "", "answer": c["code"][:300]})
    return {
        "turns": len(turns),
        "sessions": len(by_session),
        "intents": dict(Counter(t.intent or "(none)" for t in turns).most_common()),
        "experts": dict(Counter(t.expert for t in turns).most_common()),
        "misroutes": misroutes,
        "failures": failures,
        "code_blocks": len(code),
        "code_failed": sum(not c["ok"] for c in code),
        "code": code,
    }


# -- extract ---------------------------------------------------------------------------------------
def llm_facts(ctx: NightContext, messages: list[str]) -> list[dict[str, str]]:
    """Ask the local model for facts; keep only well-formed items grounded in what the user wrote."""
    from dataclasses import replace

    from evo_tr.engine import Message, generation_config
    from evo_tr.text import content_stems

    engine = ctx.engine()
    text = "\n".join(f"- {m[:300]}" for m in messages)[:3000]
    config = replace(generation_config(ctx.settings), temperature=0.0, seed=0, max_tokens=ctx.settings.night.extraction_max_tokens)
    answer = engine.chat_stream([Message("user", EXTRACTION_PROMPT + text)], config).text()
    found = JSON_ARRAY.search(answer)
    if not found:
        return []
    try:
        items = json.loads(found.group(0))
    except json.JSONDecodeError:
        return []
    user_stems = content_stems(" ".join(messages))
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("type") not in ("fact", "preference") or not isinstance(item.get("text"), str):
            continue
        fact = item["text"].strip()
        stems = content_stems(fact) - {"kulla"}  # "Kullanıcı…" is the rewrite, not content
        if not 5 <= len(fact) <= 200 or not stems or len(stems & user_stems) / len(stems) < GROUNDING:
            continue
        out.append({"text": fact, "type": item["type"]})
    return out


def nlp_annotations(text: str) -> dict[str, list[str]]:
    """Named entities and keywords from a Turkish NLP library (akana), for provenance and the report."""
    try:
        import akana
    except ImportError:  # optional at runtime: extraction works without it
        return {"entities": [], "keywords": []}
    entities = sorted({e.text for e in akana.extract_entities(text)}) if text.strip() else []
    keywords = [k["keyword"] for k in akana.extract_keywords(text, top_k=5)] if text.strip() else []
    return {"entities": entities, "keywords": keywords}


def _source_turn(fact: str, turns: list[TurnRecord]) -> TurnRecord:
    """The turn whose message shares the most content words with an extracted fact (the latest on a tie)."""
    from evo_tr.text import content_stems

    stems = content_stems(fact)
    return max(reversed(turns), key=lambda t: len(stems & content_stems(t.message)))


def extract(ctx: NightContext) -> dict[str, Any]:
    """Facts and preferences the user stated, by rules and by the local model, into memory with provenance."""
    from evo_tr.memory.facts import capture_facts

    sessions: dict[str, list[TurnRecord]] = {}
    for t in ctx.turns:
        sessions.setdefault(t.session_id, []).append(t)
    added, skipped, candidates = [], 0, []
    owners = ctx.store.session_users()  # a fact is stored as the memory of the user whose session it came from
    for session_id, turns in sessions.items():
        user = owners.get(session_id, OWNER_ID)
        done = ctx.store.night_item(ctx.day, "extract", session_id)
        if done is not None:  # finished in an earlier (interrupted) run: its own counts, once
            added += done["added"]
            skipped += done["skipped"]
            continue
        skipped_here = 0
        found: list[dict[str, Any]] = []
        for t in turns:
            for fact in capture_facts(t.message):
                found.append({"text": fact.text, "type": fact.type, "lang": fact.lang, "turn": t.number, "stated_at": t.started_at,
                              "extractor": f"rule:{fact.rule}"})
        if ctx.settings.night.llm_extraction:
            messages = [t.message for t in turns if not t.message.rstrip().endswith("?")]
            if messages:
                for item in llm_facts(ctx, messages):
                    source = _source_turn(item["text"], turns)  # when the user said it orders a changed fact's versions
                    found.append({**item, "lang": "", "turn": source.number, "stated_at": source.started_at, "extractor": "llm"})
        notes = nlp_annotations(" ".join(t.message for t in turns))
        mine, seen = [], set()
        for item in found:
            key = item["text"].casefold()
            if key in seen:
                continue
            seen.add(key)
            candidates.append(item["text"])
            if ctx.dry_run:
                continue
            store = ctx.memory()
            if store.find_duplicate(item["text"], item["type"], user=user) is not None:
                skipped_here += 1
                continue
            meta = {"night": ctx.day, "extractor": item["extractor"], "entities": ", ".join(notes["entities"])[:300],
                    "keywords": ", ".join(notes["keywords"])[:300], "stated_at": item["stated_at"]}
            result = store.add_memory(item["text"], meta, memory_type=item["type"], source="night", session=session_id, turn=item["turn"],
                                      lang=item["lang"], user=user)
            mine.append({"id": result.id, "text": item["text"], "type": item["type"], "session": session_id, "turn": item["turn"], "extractor": item["extractor"]})
        added += mine
        skipped += skipped_here
        if not ctx.dry_run:  # this session's counts only: a resumed run adds each session's once
            ctx.store.night_item_done(ctx.day, "extract", session_id, {"added": mine, "skipped": skipped_here, **notes})
    entities = sorted({e for r in ctx.store.night_items(ctx.day, "extract") for e in r.get("entities", [])})
    keywords = [k for r in ctx.store.night_items(ctx.day, "extract") for k in r.get("keywords", [])][:20]
    return {"added": added, "duplicates_skipped": skipped, "candidates": candidates, "entities": entities, "keywords": keywords}


# -- propose ---------------------------------------------------------------------------------------
def propose(ctx: NightContext) -> dict[str, Any]:
    """Good turns and user corrections become per-expert candidate examples; corrections also preference pairs."""
    code_ok = {(c["session"], c["turn"]) for c in ctx.results.get("analyze", {}).get("code", []) if c["ok"]}
    code_bad = {(c["session"], c["turn"]) for c in ctx.results.get("analyze", {}).get("code", []) if not c["ok"]}
    new = {"good": 0, "code_ran": 0, "fix": 0, "preference_pairs": 0}
    for t in ctx.turns:
        fbs = ctx.store.feedback_for(t.session_id, t.number)
        kinds = {f.kind for f in fbs}
        expert = t.expert if t.expert != "base" else "tr_chat"
        user = {"role": "user", "content": t.message}
        if ctx.dry_run:
            continue
        for fix in (f for f in fbs if f.kind == "fix"):
            target = "python_coder" if t.intent.startswith("code") else expert
            new["fix"] += ctx.store.propose(ctx.day, target, "fix", [user, {"role": "assistant", "content": fix.text}], t.session_id, t.number)
            new["preference_pairs"] += ctx.store.add_preference_pair(ctx.day, target, t.message, fix.text, t.answer, t.session_id, t.number)
        if not t.answer.strip() or t.error or t.interrupted or kinds & set(NEGATIVE):
            continue
        pair = [user, {"role": "assistant", "content": t.answer}]
        if "good" in kinds:
            new["good"] += ctx.store.propose(ctx.day, expert, "good", pair, t.session_id, t.number)
        elif (t.session_id, t.number) in code_ok and (t.session_id, t.number) not in code_bad:
            new["code_ran"] += ctx.store.propose(ctx.day, "python_coder", "code_ran", pair, t.session_id, t.number)
    pending = ctx.store.proposals(status="pending")
    return {"new": new, "pending": len(pending), "pending_by_expert": dict(Counter(p["expert"] for p in pending))}


# -- retrain ---------------------------------------------------------------------------------------
def retrain(ctx: NightContext) -> dict[str, Any]:
    """Experts with enough accepted new examples get a candidate adapter; it is promoted only if the gate says so."""
    cfg = ctx.settings.night
    out: dict[str, Any] = {}
    if not cfg.retrain or ctx.dry_run:
        return {"skipped": "retraining is off" if not cfg.retrain else "dry run"}
    for expert in sorted({p["expert"] for p in ctx.store.proposals(status="accepted", unused=True)}):
        waiting = ctx.store.proposals(status="accepted", expert=expert, unused=True)
        if len(waiting) < cfg.retrain_min_examples:
            out[expert] = {"action": "wait", "accepted_new": len(waiting), "needed": cfg.retrain_min_examples}
            continue
        ctx.say(f"night: retraining {expert} with {len(waiting)} new examples")
        out[expert] = retrain_expert(ctx.settings, expert, [p["messages"] for p in waiting], say=ctx.say)
        ctx.store.mark_proposals_used([p["id"] for p in waiting], out[expert]["candidate"])
    return out


def retrain_expert(settings: Settings, expert: str, new_examples: list[list[dict[str, str]]], *, say: Callable[[str], None] = lambda _: None,
                   base_data: Path | None = None) -> dict[str, Any]:
    """Train on the expert's data plus the new examples, then gate: held-out loss vs the active version."""
    from evo_tr.experts import base_info, registry, run_training
    from evo_tr.experts.data import packaged_dir
    from evo_tr.experts.evaluate import gate_scores

    cfg = settings.night
    reg = registry(settings)
    active = reg.active(expert)
    if active is not None and active.base_sha256 != base_info(settings).sha256:
        active = None  # a shipped adapter for another base does not serve this one: the base is what answers now
    with tempfile.TemporaryDirectory(prefix=f"evo-night-{expert}-") as tmp:
        data = Path(tmp)
        source = base_data or packaged_dir(expert)
        for f in ([source] if source.is_file() else sorted(source.glob("*.jsonl"))):
            shutil.copy(f, data / f.name)
        with open(data / "night_new.jsonl", "w", encoding="utf-8") as fh:
            for messages in new_examples:
                fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
        overrides: dict[str, Any] = {"epochs": cfg.retrain_epochs}
        if cfg.retrain_max_steps:
            overrides["max_steps"] = cfg.retrain_max_steps
        if cfg.retrain_lr:
            overrides["lr"] = cfg.retrain_lr
        candidate = run_training(settings, expert, data=data, overrides=overrides, activate=False, say=say)
    if expert in cfg.code_gate_experts:  # python_coder: Turkish and English HumanEval, pre-registered (experts/gate.py)
        from evo_tr.experts import promote_through_code_gate

        say(f"night: code gate for {expert}: base vs {candidate.tag} on Turkish and English HumanEval")
        gate = promote_through_code_gate(settings, candidate, say=say)
        return {"action": "promoted" if gate["promote"] else "rejected", **gate, "examples_new": len(new_examples)}
    say(f"night: gate for {expert}: held-out scores of {active.tag if active else 'base'} vs {candidate.tag}")
    old, new = gate_scores(settings, expert, [active, candidate], say)  # each judged at the scale it is served with
    better = new["loss"] < old["loss"] * (1 - cfg.gate_margin)
    keeps_prompt = new["prompt_gain"] >= old["prompt_gain"] * cfg.gate_min_gain_share
    promote = better and keeps_prompt
    reason = "promoted" if promote else ("held-out loss not lower beyond the noise margin" if not better else "answers depend less on the question")
    gate = {"metric": "heldout_loss", "active": active.tag if active else "base", "active_loss": old["loss"], "candidate": candidate.tag,
            "candidate_loss": new["loss"], "active_prompt_gain": old["prompt_gain"], "candidate_prompt_gain": new["prompt_gain"],
            "margin": cfg.gate_margin, "min_gain_share": cfg.gate_min_gain_share, "promoted": promote, "reason": reason}
    (candidate.path / "gate.json").write_text(json.dumps(gate, indent=2))
    if promote:
        reg.activate(expert, candidate.tag)
    return {"action": "promoted" if promote else "rejected", **gate, "examples_new": len(new_examples)}


# -- report ----------------------------------------------------------------------------------------
def report(ctx: NightContext) -> dict[str, Any]:
    """Markdown + JSON + PNG charts of the night under $EVO_HOME/reports/DAY/."""
    folder = ctx.settings.reports_dir / ctx.day
    folder.mkdir(parents=True, exist_ok=True)
    body = {"day": ctx.day, **{k: v for k, v in ctx.results.items() if k != "report"}}
    charts = draw_charts(ctx, folder)
    body["charts"] = [p.name for p in charts]
    (folder / "report.json").write_text(json.dumps(body, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    (folder / "report.md").write_text(markdown(body), encoding="utf-8")
    return {"folder": str(folder), "charts": body["charts"]}


def draw_charts(ctx: NightContext, folder: Path) -> list[Path]:
    """Intent mix, feedback over the last two weeks, and held-out loss per adapter version."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from datetime import timedelta

    from evo_tr.experts import registry
    from evo_tr.lifecycle.conversations import day_bounds

    paths = []
    intents = ctx.results.get("analyze", {}).get("intents", {})
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(list(intents) or ["(no turns)"], list(intents.values()) or [0], color="#3b7dd8")
    ax.set_title(f"Intent mix {ctx.day}")
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    paths.append(folder / "intents.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    days = [date.fromisoformat(ctx.day) - timedelta(days=i) for i in range(13, -1, -1)]
    good, bad = [], []
    for d in days:
        fbs = ctx.store.feedback_between(*day_bounds(d))
        good.append(sum(f.kind == "good" for f in fbs))
        bad.append(sum(f.negative for f in fbs))
    fig, ax = plt.subplots(figsize=(6, 3))
    labels = [d.strftime("%m-%d") for d in days]
    ax.plot(labels, good, marker="o", label="good", color="#2a9d4b")
    ax.plot(labels, bad, marker="o", label="negative", color="#d8453b")
    ax.set_title("Feedback per day")
    ax.legend()
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    paths.append(folder / "feedback.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    reg = registry(ctx.settings)
    fig, ax = plt.subplots(figsize=(6, 3))
    for expert in reg.experts():
        points = []
        for v in reg.versions(expert):
            gate_file = v.path / "gate.json"
            try:  # the code gate (`evo adapters gate`) writes a gate.json of another shape: no loss to plot
                loss = json.loads(gate_file.read_text()).get("candidate_loss") if gate_file.is_file() else None
            except (OSError, ValueError, AttributeError):
                loss = None
            if isinstance(loss, (int, float)):
                points.append((v.tag, loss))
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=expert)
    ax.set_title("Held-out loss per adapter version (lower is better)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    paths.append(folder / "eval.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    return paths


def markdown(body: dict[str, Any]) -> str:
    a, e, p, r = (body.get(k, {}) for k in ("analyze", "extract", "propose", "retrain"))
    lines = [f"# EVO-TR night report — {body['day']}", ""]
    lines += [f"**{a.get('turns', 0)} turns** in {a.get('sessions', 0)} sessions · intents: "
              + ", ".join(f"{k} {v}" for k, v in a.get("intents", {}).items()), ""]
    lines += ["## What went wrong", ""]
    for f in a.get("failures", []) or [{"kind": "none"}]:
        if f["kind"] == "none":
            lines.append("Nothing: no errors, interruptions, negative feedback or failing code.")
            break
        lines.append(f"- **{f['kind']}** ({f['session']} #{f['turn']}): {f.get('message', '')[:80]} — {f.get('reason', '')[:120]}")
    failed_code = [c for c in a.get("code", []) if not c["ok"]]
    if failed_code:
        lines += ["", "### Code that failed in the sandbox", ""]
        for c in failed_code:
            lines += [f"{c['session']} #{c['turn']}:", "```python", c["code"].rstrip(), "```", f"`{c['error'].strip().splitlines()[-1] if c['error'].strip() else ''}`", ""]
    lines += ["", "## Misroute candidates", ""]
    lines += [f"- {m['session']} #{m['turn']} {m['intent']} → {m['expert']}: {m['reason']}" for m in a.get("misroutes", [])] or ["None."]
    lines += ["", "## Learned", ""]
    lines += [f"- {m['text']} ({m['type']}, {m['extractor']}, {m['session']} #{m['turn']})" for m in e.get("added", [])] or ["Nothing new."]
    if e.get("entities"):
        lines += ["", "Entities: " + ", ".join(e["entities"])]
    lines += ["", "## Training proposals", "", f"New: {p.get('new', {})} · waiting for review: {p.get('pending', 0)} (`evo data review`)"]
    lines += ["", "## Retraining", ""]
    for expert, info in (r.items() if isinstance(r, dict) else []):
        lines.append(f"- {expert}: {json.dumps(info, ensure_ascii=False)}")
    lines += ["", "![intents](intents.png) ![feedback](feedback.png) ![eval](eval.png)", ""]
    return "\n".join(lines)


STEP_FUNCS: dict[str, Callable[[NightContext], dict[str, Any]]] = {
    "analyze": analyze, "extract": extract, "propose": propose, "retrain": retrain, "report": report,
}


def run_night(settings: Settings, day: str | date | None = None, *, dry_run: bool = False, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """All steps for one day (default: yesterday); finished steps are not redone."""
    from datetime import timedelta

    day = (day.isoformat() if isinstance(day, date) else day) or (date.today() - timedelta(days=1)).isoformat()
    with night_lock(settings):
        store = ConversationStore(settings.conversations_db)
        ctx = NightContext(settings, day, store, store.turns_for_day(day), dry_run=dry_run, say=say)
        timings: dict[str, float] = {}
        say(f"night {day}: {len(ctx.turns)} turns")
        try:
            for step in STEPS:
                if dry_run and step == "report":
                    continue
                previous = None if dry_run else store.night_step(day, step)
                if previous is not None and previous[0] == "done":
                    ctx.results[step] = previous[1]
                    say(f"night {day}: {step} already done")
                    continue
                say(f"night {day}: {step}")
                if not dry_run:
                    store.night_step_set(day, step, "running")
                t0 = time.perf_counter()
                ctx.results[step] = STEP_FUNCS[step](ctx)
                timings[step] = round(time.perf_counter() - t0, 3)
                if not dry_run:
                    store.night_step_set(day, step, "done", ctx.results[step])
                log.info("night %s: %s done", day, step, extra={"event": "night_step", "day": day, "step": step})
        finally:
            ctx.close()
    return {"day": day, "dry_run": dry_run, **ctx.results, "seconds": timings}
