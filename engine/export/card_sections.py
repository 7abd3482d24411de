"""The model card's sections: what the export is and how to run it, the run's settings and data,
examples, the evaluation, the export check.

Pure functions of what engine.export.model_card collected; each returns Markdown ("" to leave
the section out).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from engine.config import AUTO_VALIDATION_RATIO
from engine.util.units import format_size

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.export.card_sources import RunFacts
    from engine.export.check import CheckReport
    from engine.export.model_card import CardInfo

EVAL_HINT = "whetstone-engine eval --adapter RUN_FOLDER --probe forgetting"  # add --set FILE for your own
UNROUNDED = ("f32", "f16", "bf16", "q8_0")  # types an importance matrix does not touch


def fenced(text: str, lang: str = "") -> str:
    """`text` in a code fence longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _num(value: float) -> str:
    return f"{value:g}"


def what_it_is_section(info: CardInfo) -> str:
    kind = {
        "merged": "merged 16-bit Hugging Face folder (safetensors)",
        "gguf": f"GGUF file, weights in {info.quant}",
        "adapter-gguf": "LoRA adapter GGUF (adapter weights only; needs the base model as a GGUF)",
    }[info.kind]
    total = sum(size for _name, size in info.files)
    files = ", ".join(f"`{name}` ({format_size(size)})" for name, size in info.files)
    lines = ["## What it is", "", f"- Export: {kind}", f"- Files: {files}"]
    if len(info.files) > 1:
        lines.append(f"- Total size: {format_size(total)}")
    return "\n".join(lines + ["", "### How to run it", "", *_how_to_run(info)])


def _how_to_run(info: CardInfo) -> list[str]:
    if info.kind == "merged":
        return [
            "With transformers (pass this folder's path):",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'model = AutoModelForCausalLM.from_pretrained("{info.title}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{info.title}")',
            'messages = [{"role": "user", "content": "Hello!"}]',
            'ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")',
            "out = model.generate(ids, max_new_tokens=128)",
            "print(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))",
            "```",
        ]
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in info.title.lower()) or "model"
    file = info.files[0][0] if info.files else f"{info.title}.gguf"
    if info.kind == "adapter-gguf":
        base_file = info.base_gguf or "BASE.gguf"
        llama = f"llama-cli -m {base_file} --lora {file} -cnv"
        ollama_note = f"a Modelfile with `FROM ./{base_file}` and `ADAPTER ./{file}`"
        base = (
            f"`{base_file}` is {info.base.name} as a GGUF file: the adapter works with that base only."
            if info.base_gguf
            else f"BASE.gguf is {info.base.name} exported as GGUF (f16 or q8_0 keeps the adapter's effect)."
        )
    else:
        llama, ollama_note, base = f"llama-cli -m {file} -cnv", f"a Modelfile with `FROM ./{file}`", ""
    lines = ["llama.cpp:", "", "```sh", llama, "```", ""]
    lines += [base, ""] if base else []
    if info.modelfile:
        return lines + [
            f"Ollama (the `{info.modelfile}` next to the file sets the chat template and stop tokens):",
            "",
            "```sh",
            f"ollama create {name} -f {info.modelfile}",
            f"ollama run {name}",
            "```",
        ]
    return lines + [
        f"Ollama: write {ollama_note}, then `ollama create {name} -f <that file>` "
        "(exporting with `--ollama` writes one with the chat template and stop tokens)."
    ]


def is_full(config: RunConfig | None) -> bool:
    """A full fine-tuning run: the base's own weights were trained, no adapter exists."""
    return config is not None and getattr(config.training, "method", "sft") == "full"


def settings_section(config: RunConfig | None, run: RunFacts, best: dict[str, Any] | None) -> str:
    lines = ["## Method and settings", ""]
    if config is None:
        lines.append(
            "The export was made from an adapter folder outside a run: its training settings are unknown."
        )
        return "\n".join(lines)
    q, lora, t, d = config.quantization, config.lora, config.training, config.data
    if is_full(config):
        layers = "every weight" if t.full_layers.strip() == "all" else f"decoder layers {t.full_layers}"
        method = f"Full fine-tuning (the base's own weights trained unquantized: {layers})"
    elif q.load_in_4bit:
        double = ", double quantization" if q.double_quant else ""
        method = f"QLoRA (LoRA adapters trained on the base loaded in 4 bits: {q.quant_type}{double})"
    else:
        method = "LoRA (adapters trained on the base in 16 bits)"
    variants = [name for name, on in (("rsLoRA", lora.use_rslora), ("DoRA", lora.use_dora)) if on]
    length = f"{t.max_steps} steps (training.max_steps)" if t.max_steps else f"{_num(t.epochs)} epochs"
    if is_full(config):
        variants = []
    lines += [f"- Method: {method}" + (f", with {' and '.join(variants)}" if variants else "")]
    if not is_full(config):
        lines.append(
            f"- LoRA: r {lora.rank}, alpha {_num(lora.alpha)}, dropout {_num(lora.dropout)}, "
            f"target modules {', '.join(lora.target_modules)}"
        )
    lines += [
        f"- Learning rate: {_num(t.learning_rate)}, {t.lr_scheduler} schedule, "
        f"warm-up {t.warmup_ratio:.0%}, weight decay {_num(t.weight_decay)}",
        f"- Length: {length}",
        f"- Batch: {t.batch_size * t.gradient_accumulation} rows per step "
        f"(batch size {t.batch_size} × gradient accumulation {t.gradient_accumulation})",
        f"- Max length: {d.max_length} tokens",
        f"- Seed: {t.seed}",
    ]
    if t.neftune_alpha:
        lines.append(f"- NEFTune noise: alpha {_num(t.neftune_alpha)}")
    weights = _weights(run, best)
    lines.append(f"- Weights: {weights.replace('the adapter', 'the model') if is_full(config) else weights}")
    return "\n".join(lines)


def _weights(run: RunFacts, best: dict[str, Any] | None) -> str:
    if run.adapter_step is None:
        return "the adapter as exported (its training step is not recorded)"
    of = f" of {run.steps} trained" if run.steps is not None else ""
    text = f"the adapter at step {run.adapter_step}{of}"
    if best is not None:
        return f"{text}, the best checkpoint (lowest validation loss, {best['eval_loss']:.4f})"
    if run.steps is not None and run.adapter_step == run.steps:
        return f"{text}, the run's last step"
    return text


def data_section(
    config: RunConfig | None, data: dict[str, Any] | None, replay: int | None, shown: bool
) -> str:
    lines = ["## Training data", ""]
    if data is None:
        lines.append("Not recorded (no run folder, or its event log has no data summary).")
        return "\n".join(lines)
    file = config.data.path.replace("\\", "/").rsplit("/", 1)[-1] if config and config.data.path else None
    where = f"`{file}`, " if file else ""
    lines.append(f"- Training rows: {data.get('train_rows', '?')} ({where}{data.get('format', '?')} format)")
    source = (data.get("validation") or {}).get("source") or ""
    ratio = AUTO_VALIDATION_RATIO if source == "auto" else config.data.validation_ratio if config else None
    share = f"{ratio:.0%} " if isinstance(ratio, float) else ""
    held = {
        "file": "from a separate validation file",
        "ratio": f"{share}of the training file held out",
        "auto": f"{share}of the training file held out, chosen automatically",
    }.get(source, "")
    rows = data.get("validation_rows", 0)
    lines.append(f"- Validation rows: {rows}" + (f" ({held})" if rows and held else ""))
    if isinstance(data.get("tokens"), int):
        trained = data.get("trained_tokens")
        of = f", {trained} of them trained on (the answers)" if isinstance(trained, int) else ""
        lines.append(f"- Tokens: {data['tokens']} in the training and validation rows{of}")
    skipped = data.get("skipped") or {}
    if skipped:
        detail = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in skipped.items())
        lines.append(f"- Skipped rows: {sum(skipped.values())} ({detail})")
    if data.get("truncated_rows"):
        lines.append(
            f"- Truncated rows: {data['truncated_rows']} (longer than the max length; "
            f"{data.get('truncated_tokens', '?')} tokens cut)"
        )
    if replay:
        lines.append(f"- Replay: {replay} of the base model's own answers mixed in against forgetting")
    if not shown:
        lines.append("- Row contents are not included in this card.")
    return "\n".join(lines)


def examples_section(examples: tuple[Any, ...], asked: int) -> str:
    if asked <= 0:
        return ""
    lines = ["## Training examples", ""]
    if not examples:
        return "\n".join(lines + [f"{asked} asked for, but the training data could not be read."])
    lines.append(f"The first {len(examples)} training rows, as the trainer read them:")
    for i, row in enumerate(examples, 1):
        lines += ["", f"Example {i}:", "", fenced(_row_text(row), "text")]
    return "\n".join(lines)


def _row_text(row: Any) -> str:
    if isinstance(row, list):  # a conversation
        return "\n".join(
            f"[{m.get('role', '?')}]\n{m.get('content', '')}" for m in row if isinstance(m, dict)
        )
    if isinstance(row, dict) and "text" in row:
        return str(row["text"])
    if isinstance(row, dict):
        return "\n".join(f"[{key}]\n{value}" for key, value in row.items())
    return str(row)


def evaluation_section(report: dict[str, Any] | None, run_path: str | None) -> str:
    lines = ["## Evaluation", ""]
    if not report:
        hint = EVAL_HINT.replace("RUN_FOLDER", run_path or "RUN_FOLDER")
        return "\n".join(lines + [f"Not evaluated — run `{hint}`."])
    from engine.eval.report import headline, scorecard_text

    created = str(report.get("created") or "")[:10]
    labels = ", ".join(str(m.get("label", "?")) for m in report.get("models") or [])
    top = headline(report)
    lines.append(f"Latest evaluation of the run ({created or 'date unknown'}; columns: {labels}):")
    if top:
        lines += ["", f"**{top}**"]
    return "\n".join([*lines, "", fenced(scorecard_text(report), "text")])


def _diff(value: float | None, fmt: str) -> str:
    return "—" if value is None or value != value else format(value, fmt)


def check_section(
    kind: str, quant: str | None, imatrix: bool | None, check: CheckReport | None, checked: bool
) -> str:
    title = "## Quantization and export check" if kind == "gguf" else "## Export check"
    lines = [title, ""]
    if kind == "gguf":
        matrix = ", with an importance matrix" if imatrix else ""
        if imatrix is False and quant not in UNROUNDED:
            matrix = ", without an importance matrix"
        lines.append(f"- Weight type: {quant}{matrix}")
    if check is None:
        verdict = "not checked (--no-check)" if not checked else "not checked"
        return "\n".join(lines + [f"- Export check: {verdict}"])
    if not hasattr(check, "prompts"):  # an adapter GGUF's check: its tensors read back (gguf_adapter)
        verdict = "passed" if check.passed else "FAILED"
        problems = [f"  - {problem}" for problem in check.problems[:5]]
        return "\n".join(
            lines
            + [
                f"- Export check: {verdict} ({check.tensors} LoRA tensors read back, max abs diff "
                f"{check.max_abs_diff:.1e} from the adapter's weights)",
                *problems,
            ]
        )
    passed = sum(p.passed for p in check.prompts)
    verdict = "passed" if check.passed else "FAILED"
    writer = any(p.writer_max_abs_logit_diff is not None for p in check.prompts)
    against = f"{check.reference} rounded as the file stores it" if writer else check.reference
    lines.append(f"- Export check: {verdict} ({passed} of {len(check.prompts)} prompts agree with {against})")
    if writer:
        judged = sum(1 for p in check.prompts if p.writer_max_abs_logit_diff is not None)
        lines.append(
            f"- Answers that changed with the rounding: {check.rounding_changed_answers()} of {judged}"
        )
    lines += ["", "| Prompt | Max logit diff | Top-1 agreement | Same answer |", "|---|---|---|---|"]
    for p in check.prompts:
        prompt = p.prompt.replace("|", "\\|").replace("\n", " ")[:60]
        top1 = _diff(p.top1_agreement, ".0%")
        lines.append(
            f"| {prompt} | {_diff(p.max_abs_logit_diff, '.3g')} | {top1} | {'yes' if p.same_text else 'no'} |"
        )
    if writer:
        lines += [
            "",
            f"The verdict compares the file with {check.reference} rounded the same way; the table "
            "shows what the rounding costs against the unrounded run.",
        ]
    return "\n".join(lines)


def run_section(version: str, date: str, run_name: str | None, run: RunFacts) -> str:
    lines = ["## Provenance", "", f"- Made with Whetstone {version} on {date} (UTC)"]
    if run_name:
        state = f", {run.state}" if run.state else ""
        lines.append(f"- Run: `{run_name}`{state}")
    return "\n".join(lines)
