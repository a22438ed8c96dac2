"""`evo train EXPERT` and `evo adapters …`: train LoRA experts and manage their versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from evo_tr.config import load_settings
from evo_tr.errors import EvoError

adapters_app = typer.Typer(help="List, activate, roll back and remove LoRA adapter versions.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object.")]


def train(
    expert: Annotated[str, typer.Argument(help="Expert to train, e.g. tr_chat or python_coder.")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML recipe (default: the packaged configs/lora_EXPERT.yaml).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Chat-JSONL/Alpaca file or folder (default: the packaged dataset).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model (default: settings.model).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override epochs.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Override the learning rate.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N optimizer steps (smoke runs).")] = None,
    max_seq: Annotated[Optional[int], typer.Option(help="Override the token limit per example.")] = None,
    kl_weight: Annotated[Optional[float], typer.Option(help="Override the pull towards the base's own predictions (0 = off).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last epoch checkpoint of the previous run.")] = False,
    no_activate: Annotated[bool, typer.Option("--no-activate", help="Register the new version without making it active.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a LoRA expert on the served base model; saves adapters/EXPERT/vN (PEFT + GGUF + metadata)."""
    from evo_tr.experts import run_training

    settings = load_settings()
    overrides = {"epochs": epochs, "lr": lr, "max_steps": max_steps, "max_seq": max_seq, "kl_weight": kl_weight}
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=as_json,
    )
    task = None

    def on_step(info: dict) -> None:
        nonlocal task
        if task is None:
            task = progress.add_task(f"train {expert}", total=info["total"], status="")
        status = f"loss {info['loss']:.3f}" + (f" · kl {info['kl']:.4f}" if "kl" in info else "")
        status += (f" · valid {info['valid_loss']:.3f}" if "valid_loss" in info else "") + f" · epoch {info['epoch']}"
        progress.update(task, completed=info["step"], status=status)

    with progress:
        version = run_training(
            settings, expert, data=data, config_path=config, overrides=overrides, resume=resume, model=model,
            activate=not no_activate, say=lambda m: err.print(f"[dim]{m}[/dim]"), on_step=on_step,
        )
    if as_json:
        print(json.dumps(version.as_dict(), ensure_ascii=False))
        return
    m = version.meta["metrics"]
    console.print(
        f"[green]{expert} {version.tag}[/green] saved to {version.path} · {m['steps']} steps · "
        f"loss {m['train_loss_first']} → {m['train_loss_last']} · valid {m['valid_loss_before']} → "
        f"{m['valid_losses'][-1][1] if m['valid_losses'] else '-'} · peak RSS {m['peak_rss_mb']:.0f} MB"
        + (" · active" if not no_activate else "")
    )


@adapters_app.command("list")
def adapters_list(as_json: JsonOpt = False) -> None:
    """Every expert's versions, which one is active, and what they were trained on."""
    from evo_tr.experts import registry

    reg = registry(load_settings())
    rows = []
    for expert in reg.experts():
        active = reg.active(expert)
        versions = ([reg.packaged(expert)] if reg.packaged(expert) else []) + reg.versions(expert)
        for v in versions:
            rows.append({**v.as_dict(), "active": active is not None and active.path == v.path})
    if as_json:
        print(json.dumps({"adapters": rows}, ensure_ascii=False))
        return
    if not rows:
        console.print("No adapters yet. Train one with `evo train tr_chat`.")
        return
    table = Table()
    for col in ("expert", "version", "active", "scale", "base", "examples", "valid loss", "created"):
        table.add_column(col)
    for r in rows:
        losses = r.get("metrics", {}).get("valid_losses") or []
        table.add_row(
            r["expert"], r["version"] + (" (packaged)" if r["packaged"] else ""), "●" if r["active"] else "", f"{r['scale']:g}" if isinstance(r["scale"], (int, float)) else str(r["scale"]),
            r.get("base", {}).get("name", "?"), str(r.get("dataset", {}).get("examples", "?")),
            f"{losses[-1][1]:.3f}" if losses else "-", (r.get("created_at") or "")[:16],
        )
    console.print(table)


@adapters_app.command("activate")
def adapters_activate(
    expert: str,
    version: Annotated[str, typer.Argument(help="vN, v0 for the packaged one, or none.")],
    scale: Annotated[Optional[float], typer.Option("--scale", help="LoRA scale to serve this version at (recorded in its metadata.json; 1 = as trained, smaller = closer to the base).")] = None,
) -> None:
    """Make VERSION the one `evo chat` loads for EXPERT."""
    from evo_tr.experts import registry

    reg = registry(load_settings())
    if scale is not None:
        if version == "none":
            raise EvoError("--scale needs an adapter version, not 'none'.")
        reg.set_scale(expert, version, scale)
    target = reg.activate(expert, version)
    shown = "no adapter (base model)" if target is None else target.tag + (f" at scale {target.scale:g}" if target.scale != 1 else "")
    console.print(f"{expert}: {shown} active.")


@adapters_app.command("rollback")
def adapters_rollback(expert: str) -> None:
    """Go back to the version that was active before the current one."""
    from evo_tr.experts import registry

    target = registry(load_settings()).rollback(expert)
    console.print(f"{expert}: back to {'the base model' if target is None else target.tag}.")


@adapters_app.command("publish")
def adapters_publish(
    expert: Annotated[Optional[str], typer.Argument(help="Expert to publish (default: every expert with an active adapter).")] = None,
    version: Annotated[Optional[str], typer.Argument(help="vN (default: the active version).")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="The server's API root, e.g. http://gpu-box:8001/v1 (default: engine.url).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="LoRA module name on the server (default: the expert's name for the active "
                                                  "version, EXPERT-vN for another, so the router's choice is never replaced silently).")] = None,
    print_only: Annotated[bool, typer.Option("--print", help="Print the `vllm serve …` command that loads these adapters at start instead.")] = False,
    base_dir: Annotated[Optional[str], typer.Option("--base", help="With --print: the base model as vLLM should load it (an HF folder or a Hub id; "
                                                      "default: this model converted to HF format, `evo models hf`).")] = None,
    port: Annotated[int, typer.Option("--port", help="With --print: the port the server listens on.")] = 8001,
    as_json: JsonOpt = False,
) -> None:
    """Load adapter versions into a running vLLM (its runtime LoRA API), or print the command that serves them.

    The server reads the PEFT folder itself: on one machine that is the version's folder; across machines set
    engine.lora_dir to a folder both see. The server must run with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and
    --enable-lora. With engine.backend = "openai", activation, rollback and the night's promotion publish by themselves."""
    from evo_tr.experts import base_info, registry
    from evo_tr.experts.publish import Publisher, vllm_command
    from evo_tr.experts.registry import check_base

    settings = load_settings()
    reg = registry(settings)
    base = base_info(settings)
    if expert is None and (version is not None or name is not None):
        raise EvoError("A version or --name needs an expert.", "e.g. `evo adapters publish python_coder v3 --to URL`.")
    if expert is None:  # every active adapter trained on this base (another base's would serve garbage)
        active = [v for v in (reg.active(e) for e in reg.experts()) if v is not None]
        chosen = [v for v in active if v.base_sha256 == base.sha256]
        for v in active:
            if v not in chosen:
                err.print(f"[dim]{v.expert} {v.tag} skipped: trained on {v.meta.get('base', {}).get('name', 'another base')}, not {base.name}.[/dim]")
        if not chosen:
            raise EvoError(f"No expert has an active adapter trained on {base.name}.", "Train one (`evo train tr_chat`) or name a version.")
    else:
        target = reg.get(expert, version) if version else reg.active(expert)
        if target is None:
            raise EvoError(f"{expert} has no active adapter (it answers with the base model).", f"Name a version: `evo adapters publish {expert} vN`.")
        check_base(target, base.name, base.sha256)
        chosen = [target]
    if print_only:
        publisher = Publisher(to or settings.engine.url or "http://127.0.0.1:8001/v1", lora_dir=settings.engine.lora_dir,
                              lora_dir_remote=settings.engine.lora_dir_remote) if settings.engine.lora_dir else None
        command = vllm_command(chosen, base_dir=base_dir or _hf_base_hint(settings, base), served_name=settings.engine.remote_model or settings.model, port=port,
                               publisher=publisher)
        if as_json:
            print(json.dumps({"command": command, "adapters": [{"expert": v.expert, "version": v.tag} for v in chosen]}, ensure_ascii=False))
        else:
            print(command)
        return
    publisher = Publisher.from_settings(settings, url=to)
    done = []
    for v in chosen:
        active = reg.active(v.expert)
        module = name or (v.expert if active is not None and active.path == v.path else f"{v.expert}-{v.tag}")
        done.append(publisher.publish(v, name=module))
    if as_json:
        print(json.dumps({"published": [p.as_dict() for p in done]}, ensure_ascii=False))
        return
    for p in done:
        console.print(f"[green]{p.expert} {p.version}[/green] → {p.url} as [bold]{p.name}[/bold] (model: \"{p.name}\") from {p.path}")


def _hf_base_hint(settings, base) -> str:
    """The base model in HF format for vLLM: the converted folder when it exists, else a placeholder with the fix."""
    from evo_tr.engine.transformers_peft import torch_base_dir

    folder = torch_base_dir(settings, base.name, base.sha256)
    if (folder / "config.json").is_file():
        return str(folder)
    err.print(f"[yellow]The base is not converted to HF format yet: run `evo models hf {base.name}` and use the folder it prints.[/yellow]")
    return "HF_MODEL_DIR"


@adapters_app.command("gate")
def adapters_gate(
    expert: str,
    version: Annotated[str, typer.Argument(help="vN: a registered version (e.g. trained with `evo train EXPERT --no-activate`).")],
    as_json: JsonOpt = False,
) -> None:
    """Judge VERSION by the code gate (Turkish HumanEval gain, English non-inferiority); activate it only if it passes.

    Writes both comparisons, with the flipped task ids, to the version's gate.json. The base's outcomes come from the
    baseline cache where they are known (a few rechecked), so a gate costs about the candidate's two runs."""
    from evo_tr.experts import promote_through_code_gate, registry

    settings = load_settings()
    if expert not in settings.night.code_gate_experts:
        raise EvoError(f"{expert} has no code gate (it is for {', '.join(settings.night.code_gate_experts) or 'no expert'}).",
                       "Judge other experts with `evo eval turkish`, or add the expert to night.code_gate_experts.")
    target = registry(settings).get(expert, version)
    gate = promote_through_code_gate(settings, target, say=lambda m: err.print(f"[dim]{m}[/dim]"))
    if as_json:
        print(json.dumps(gate, ensure_ascii=False))
        return
    for lang, label in (("turkish", "Turkish HumanEval (Turkish request)"), ("english", "English HumanEval")):
        c = gate[lang]
        console.print(f"{label}: base {c['base_passed']}/{c['problems']}, {expert} {target.tag} {c['candidate_passed']}/{c['problems']}; "
                      f"only {target.tag} {len(c['gained'])}, only the base {len(c['lost'])} (one-sided McNemar p = {c['p_greater']:.3g})")
    console.print(f"{expert} {target.tag}: " + ("[green]promoted and active[/green]" if gate["promote"] else f"[yellow]not promoted[/yellow] ({gate['reason']})"))


@adapters_app.command("remove")
def adapters_remove(expert: str, version: str) -> None:
    """Delete an inactive version."""
    from evo_tr.experts import registry

    registry(load_settings()).remove(expert, version)
    console.print(f"Removed {expert} {version}.")


def served_versions(attached: list, names: list[str | None]) -> dict[str, dict]:
    """Which registry version (and scale) answered for each evaluated expert: an eval figure is tied to it."""
    return {v.expert: {"version": v.tag, "packaged": v.packaged, "scale": v.scale} for v in attached if v.expert in names}


eval_app = typer.Typer(help="Evaluate the base model and expert adapters.", no_args_is_help=True)


@eval_app.command("python")
def eval_python_cmd(
    adapter: Annotated[Optional[str], typer.Option("--adapter", help="Expert adapter to compare with the base model (or 'none' for base only).")] = "python_coder",
    data: Annotated[Optional[list[str]], typer.Option("--data", help="Problem set: humaneval (default), humaneval-tr (the 164 problems with Turkish "
                                                       "docstrings), or a JSONL file with task_id, prompt, entry_point, test. Repeat it to run "
                                                       "several sets in one run, paired problem by problem (e.g. --data humaneval --data humaneval-tr).")] = None,
    instruction_lang: Annotated[Optional[str], typer.Option("--instruction-lang", help="Language of the request around each stub: tr or en "
                                                             "(default: the set's own, tr for a Turkish set, as a Turkish user writes it).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N problems of each set.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model (default: settings.model).")] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Processes, each with its own engine (one decode thread each): use up to your core count.")] = 1,
    fresh_baseline: Annotated[bool, typer.Option("--fresh-baseline", help="Run the base on every problem instead of reusing its cached outcomes "
                                                  "(cached ones are always partly rechecked).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """HumanEval-format pass@1 (greedy); every completion runs in the sandbox (time/memory/file limits, no network)."""
    from evo_tr.experts import load_with_experts
    from evo_tr.experts.evaluate import INSTRUCTIONS, eval_python, load_problem_set, paired_sets

    if instruction_lang is not None and instruction_lang not in INSTRUCTIONS:
        raise EvoError(f"Unknown --instruction-lang {instruction_lang!r}.", f"Use one of: {', '.join(sorted(INSTRUCTIONS))}.")
    sets = [load_problem_set(d, limit) for d in (data or [None])]  # a bad file fails before the model loads
    settings = load_settings()
    engine, attached, _ = load_with_experts(settings, model)  # here too with workers > 1: a missing adapter fails before any pool starts
    adapters: list[str | None] = [None]
    if adapter and adapter != "none":
        if adapter not in engine.adapters():
            raise EvoError(f"No active adapter for {adapter!r} on this model.", f"Train it first: `evo train {adapter}` (or pass --adapter none).")
        adapters.append(adapter)
    if workers > 1:
        engine.close()  # each worker loads its own; this one would sit idle holding the model
        engine = None
    results = []
    for pset in sets:
        result = eval_python(settings, engine, adapters, workers=workers, model=model, say=lambda m: err.print(f"[dim]{m}[/dim]"),
                             problem_set=pset, instruction_lang=instruction_lang, baseline_cache=False if fresh_baseline else None)
        result["adapter_versions"] = served_versions(attached, adapters)
        results.append(result)
    pairs = [paired_sets(results[0], r, key) for r in results[1:] for key in ("base", *(a for a in adapters if a))]
    if as_json:
        print(json.dumps(results[0] if len(results) == 1 else {"sets": results, "paired_sets": pairs}, ensure_ascii=False))
        return
    for result in results:
        label = f"{result['benchmark']} ({result['instruction_lang']} request)"
        if cache := result.get("base_cache"):
            console.print(f"[dim]{label} · base: {cache['reused']} outcomes from the cache, {cache['agreed']}/{cache['rechecked']} rechecks agreed"
                          + (" (cache dropped, base run on every problem)" if cache["discarded"] else "") + "[/dim]")
        for key in ("base", *(a for a in adapters if a)):
            console.print(f"{label} · {key}: pass@1 [bold]{result[f'pass_at_1_{key}']:.3f}[/bold] ({result[f'passed_{key}']}/{result['problems']})")
        for key in (a for a in adapters if a):
            paired = result[f"paired_{key}"]
            console.print(
                f"{label} · {key} vs base: passed only by {key} {len(paired['only_adapter_passes'])}, "
                f"only by the base {len(paired['only_base_passes'])} (McNemar exact p = {paired['mcnemar_p']:.3f})"
            )
    for pair, key in zip(pairs, [k for _ in results[1:] for k in ("base", *(a for a in adapters if a))]):
        console.print(f"{key}: {pair['first']} {pair['pass_at_1_first']:.3f} vs {pair['second']} {pair['pass_at_1_second']:.3f} on "
                      f"{pair['problems']} shared problems: only the first {len(pair['only_first_passes'])}, only the second "
                      f"{len(pair['only_second_passes'])} (McNemar exact p = {pair['mcnemar_p']:.3f})")


@eval_app.command("turkish")
def eval_turkish_cmd(
    adapter: Annotated[Optional[str], typer.Option("--adapter", help="Expert adapter to compare with the base model (or 'none').")] = "tr_chat",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model (default: settings.model).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N held-out examples.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Held-out Turkish set: perplexity of reference answers and word-validity of generated answers, base vs adapter."""
    from evo_tr.experts import load_with_experts
    from evo_tr.experts.evaluate import eval_turkish

    settings = load_settings()
    engine, attached, _ = load_with_experts(settings, model)
    version = None
    if adapter and adapter != "none":
        version = next((v for v in attached if v.expert == adapter), None)
        if version is None:
            raise EvoError(f"No active adapter for {adapter!r} on this model.", f"Train it first: `evo train {adapter}` (or pass --adapter none).")
    else:
        adapter = None
    result = eval_turkish(settings, engine, version, limit=limit, say=lambda m: err.print(f"[dim]{m}[/dim]"))
    result["adapter_versions"] = served_versions(attached, [adapter])
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    console.print(f"perplexity: base {result['perplexity_base']}" + (f" · {adapter} {result['perplexity_adapter']}" if adapter else ""))
    console.print(f"word validity: base {result['word_validity_base']:.3f}" + (f" · {adapter} {result['word_validity_adapter']:.3f}" if adapter else ""))


data_app = typer.Typer(help="Import training data for the experts.", no_args_is_help=True)


@data_app.command("import")
def data_import(
    ref: Annotated[str, typer.Argument(help="hf:OWNER/NAME/FILE (.jsonl, .json, or .parquet with pyarrow), e.g. hf:CohereForAI/aya_dataset/train.jsonl")],
    expert: Annotated[str, typer.Option("--expert", "-e", help="Which expert the data is for.")] = "tr_chat",
    fmt: Annotated[str, typer.Option("--format", help="auto, aya (inputs/targets), alpaca (instruction/input/output) or chat (messages).")] = "auto",
    language: Annotated[Optional[str], typer.Option("--language", help="Keep only rows whose 'language' field matches (Aya: Turkish).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Keep at most N examples.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a Hugging Face dataset file (resumable; HF_TOKEN/HF_ENDPOINT honoured), convert and clean it."""
    import os

    from dotenv import load_dotenv

    from evo_tr.experts.importer import import_hf_dataset

    load_dotenv(Path.cwd() / ".env")
    result = import_hf_dataset(
        load_settings(), ref, expert, fmt=fmt, language=language, limit=limit,
        token=os.environ.get("HF_TOKEN"), endpoint=os.environ.get("HF_ENDPOINT"),
    )
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    console.print(
        f"{result.rows} rows · {result.kept_language} in language · {result.converted} converted · "
        f"[bold]{result.written}[/bold] written to {result.output}"
    )
    for line in result.skipped[:5]:
        err.print(f"[yellow]skipped[/yellow] {line}")
    console.print(f"Train with it: evo train {expert} --data {result.output.parent}")
