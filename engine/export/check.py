"""The after-export check: does the exported model answer like base + adapter did?

Reference: the base in 16-bit (fp32 on CPU) with the adapter applied by peft, not merged —
what the user chatted with, minus the 4-bit rounding (a full fine-tuning run: its own model).
The export is read back by an independent reader (plain transformers for a merged folder;
transformers' GGUF dequantizer for a .gguf, plus llama-cpp-python when it is installed), prompts
are rendered through the exported chat template, and both models decode greedily. Logits are
compared teacher-forced on the reference continuation, so one near-tie flip does not hide
everything after it.
"""

from __future__ import annotations

import functools
import gc
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.export.merge import ExportSource, load_reference

DEFAULT_PROMPTS = ("Hello! Who are you?", "Give me three tips for writing clear emails.")

# Tolerances on the largest absolute next-token logit difference (real models' logits span ~±30):
# - merged fp32 (CPU): W x + s·B(A x) and (W + s·BA) x differ only by float32 summation order, ~1e-5
#   per layer; 1e-2 leaves room for deep models and still fails on any real weight change.
# - merged bf16 (CUDA): each merged weight is rounded once more to bf16 (relative 2^-9), which moves
#   logits by a few tenths on 1-8B models; 1.0 passes that and fails a lost adapter or a broken tensor.
# - gguf f32/f16/bf16: one more 16-bit rounding of every weight; same scale as bf16 merging -> 1.0.
# - gguf q8_0: 8-bit blocks (relative error ~1/256 per weight) -> about twice the 16-bit drift -> 2.0.
# - smaller gguf quants (q6_k ... q4_0) drift further; 4.0 still catches a wrong template or tensor.
# top-1 agreement (teacher-forced): exact for fp32; 16-bit/quantized exports may flip a near-tie.
TOLERANCES = {
    "merged-fp32": (1e-2, 1.0),
    "merged-16": (1.0, 0.9),
    "gguf-16": (1.0, 0.9),
    "gguf-q8_0": (2.0, 0.85),
    "gguf-other": (4.0, 0.75),
}
# A quantized GGUF against the same weights rounded the same way in numpy: only float summation
# order differs (measured < 1e-4 on the tiny model); 0.05 still fails any wrong tensor or layout.
WRITER_TOLERANCE = (0.05, 0.98)


@dataclass(frozen=True)
class PromptAgreement:
    prompt: str
    reference_text: str
    exported_text: str
    same_text: bool
    max_abs_logit_diff: float
    top1_agreement: float  # fraction of positions whose argmax agrees (teacher-forced on the reference)
    passed: bool = True
    # Quantized GGUF only: max logit difference from base + adapter rounded exactly as the file stores
    # it. This decides the verdict; the fields above then show what the chosen rounding costs.
    writer_max_abs_logit_diff: float | None = None


@dataclass(frozen=True)
class CheckReport:
    kind: str  # "merged" | "gguf"
    prompts: tuple[PromptAgreement, ...]
    tolerance: float
    passed: bool
    min_top1: float = 1.0
    reference: str = "base + adapter"  # what the export is compared with, in words (reference_words)

    def summary_lines(self) -> list[str]:
        lines = []
        for p in self.prompts:
            mark = "ok  " if p.passed else "FAIL"
            writer = (
                ""
                if p.writer_max_abs_logit_diff is None
                else f"writer diff {p.writer_max_abs_logit_diff:.1e} (vs the same rounding); "
                "quantized vs run: "
            )
            lines.append(
                f"{mark} {p.prompt[:40]!r}: {writer}max logit diff {p.max_abs_logit_diff:.2e}, "
                "top-1 agreement "
                f"{p.top1_agreement:.0%}, {'same text' if p.same_text else 'text differs'}"
            )
            if not p.same_text:
                lines.append(f"     reference: {p.reference_text[:60]!r}")
                lines.append(f"     exported : {p.exported_text[:60]!r}")
        verdict = "passed" if self.passed else "FAILED"
        passed = f"{sum(p.passed for p in self.prompts)}/{len(self.prompts)}"
        if any(p.writer_max_abs_logit_diff is not None for p in self.prompts):
            lines.append(
                f"Export check ({self.kind}) {verdict}: {passed} prompts give {self.reference}'s logits, "
                "with the weights rounded as the file stores them, "
                f"within {WRITER_TOLERANCE[0]:g} and top-1 agreement "
                f">= {WRITER_TOLERANCE[1]:.0%}."
            )
            if self.rounding_changed_answers():
                judged = sum(1 for p in self.prompts if p.writer_max_abs_logit_diff is not None)
                lines.append(
                    "Warning: the file is right, but its rounding changes "
                    f"{self.rounding_changed_answers()} of "
                    f"{judged} answers of the run; a larger type keeps more of them (f16 keeps them all)."
                )
        else:
            lines.append(
                f"Export check ({self.kind}) {verdict}: {passed} prompts within logit tolerance "
                f"{self.tolerance:g} and top-1 agreement >= {self.min_top1:.0%}."
            )
        return lines

    def rounding_changed_answers(self) -> int:
        """Quantized GGUF: how many greedy answers the chosen rounding changed (a warning, not a failure)."""
        return sum(1 for p in self.prompts if p.writer_max_abs_logit_diff is not None and not p.same_text)

    def as_dict(self) -> dict:
        raw = asdict(self)
        raw["rounding_changed_answers"] = self.rounding_changed_answers()
        for p in raw["prompts"]:  # NaN (not measured, llama.cpp rows) is not valid JSON
            for key in ("max_abs_logit_diff", "top1_agreement"):
                p[key] = None if p[key] != p[key] else p[key]
        return raw


def default_prompts() -> list[str]:
    from engine.models.demo import DEMO_PROMPTS

    return [*DEMO_PROMPTS, *DEFAULT_PROMPTS]


def check_export(
    source: ExportSource,
    *,
    merged_dir: Path | None = None,
    gguf_file: Path | None = None,
    prompts: list[str] | None = None,
    max_new_tokens: int = 24,
    imatrix=None,
) -> CheckReport:
    """Compare the export with base + adapter on a few chat prompts; see the module docstring.
    `imatrix`: the importance matrix a quantized GGUF was written with, to round the reference alike."""
    import torch

    if (merged_dir is None) == (gguf_file is None):
        raise ValueError("pass exactly one of merged_dir and gguf_file")
    prompts = list(prompts) if prompts else default_prompts()

    # One model in memory at a time: the reference's answers and logits first, then the export.
    model, tokenizer = load_reference(source)
    dtype = next(model.parameters()).dtype
    ref = []
    for prompt in prompts:
        ids = _prompt_ids(tokenizer, tokenizer.chat_template, prompt)
        new = _greedy(model, tokenizer, ids, max_new_tokens)
        full = torch.cat([ids, new])
        ref.append((ids, new, full, _logits(model, full, len(ids))))
    ref_texts = [tokenizer.decode(r[1], skip_special_tokens=True) for r in ref]
    rounded_logits, rounded_texts = (
        _rounded_reference(model, tokenizer, gguf_file, ref, max_new_tokens, imatrix)
        if gguf_file
        else (None, None)
    )
    del model
    gc.collect()

    if merged_dir is not None:
        kind, key = "merged", "merged-fp32" if dtype == torch.float32 else "merged-16"
        from engine.models.loading import inspect_model_folder, trust_remote_code

        # The merged folder carries a copy of the base's own code: it runs only if the base's may.
        trusted = trust_remote_code(inspect_model_folder(source.model_config()))
        exported, exp_tok, template = _load_merged(Path(merged_dir), dtype, trusted)
    else:
        kind, key = "gguf", _gguf_key(Path(gguf_file))
        exported, exp_tok, template = _load_gguf(Path(gguf_file))
    tolerance, min_top1 = TOLERANCES[key]

    results = []
    for prompt, (ids, _new, full, ref_logits), ref_text in zip(prompts, ref, ref_texts, strict=True):
        exp_ids = _prompt_ids(exp_tok, template, prompt)
        exp_text = exp_tok.decode(
            _greedy(exported, exp_tok, exp_ids, max_new_tokens), skip_special_tokens=True
        )
        exp_logits = _logits(exported, full, len(ids))
        vocab = min(ref_logits.shape[-1], exp_logits.shape[-1])  # a GGUF may pad the vocabulary
        a, b = ref_logits[:, :vocab], exp_logits[:, :vocab]
        diff = float((a - b).abs().max())
        top1 = float((a.argmax(-1) == b.argmax(-1)).float().mean())
        same = exp_text == ref_text
        # Merged fp32 must reproduce the text exactly; quantized exports may legitimately drift on ties.
        ok = diff <= tolerance and top1 >= min_top1 and (same or key != "merged-fp32")
        writer_diff = None
        if rounded_logits is not None:  # judge the writer, not the rounding the user asked for
            exact = rounded_logits[len(results)][:, :vocab]
            writer_diff = float((exact - b).abs().max())
            writer_top1 = float((exact.argmax(-1) == b.argmax(-1)).float().mean())
            ok = writer_diff <= WRITER_TOLERANCE[0] and writer_top1 >= WRITER_TOLERANCE[1]
        results.append(PromptAgreement(prompt, ref_text, exp_text, same, diff, top1, ok, writer_diff))
    del exported
    gc.collect()
    # llama.cpp is compared with what the file should say: the rounded reference for a quantized file.
    llama_refs = rounded_texts or ref_texts
    results += _llama_cpp_results(gguf_file, prompts, llama_refs, max_new_tokens) if gguf_file else []
    passed = all(r.passed for r in results)
    return CheckReport(kind, tuple(results), tolerance, passed, min_top1, reference_words(source))


def reference_words(source: ExportSource) -> str:
    """What the export is checked against: a full fine-tuning run has no adapter."""
    return "the fully tuned model" if source.full else "base + adapter"


def _rounded_reference(model, tokenizer, gguf_file: Path, ref, max_new_tokens: int, imatrix=None):
    """For a quantized GGUF: the reference's logits and greedy answers with its weights rounded as
    the file stores them; (None, None) for an unquantized file."""
    from engine.export.gguf_write import quant_of_file_type, round_like_gguf

    quant = quant_of_file_type(_gguf_metadata(Path(gguf_file)).get("general.file_type"))
    if quant in (None, "f32", "f16"):
        return None, None  # unquantized: the plain comparison with its tolerance is the verdict
    merged = model.merge_and_unload()
    round_like_gguf(merged, gguf_file, imatrix)
    logits = [_logits(merged, full, len(ids)) for ids, _new, full, _ref_logits in ref]
    texts = [
        tokenizer.decode(_greedy(merged, tokenizer, ids, max_new_tokens), skip_special_tokens=True)
        for ids, _new, _full, _ref_logits in ref
    ]
    return logits, texts


def _prompt_ids(tokenizer, template: str | None, prompt: str):
    """Render a user turn exactly as engine.chat.loading.stream_chat does."""
    messages = [{"role": "user", "content": prompt}]
    if template:
        from engine.models.chat_template import render_chat_template  # sandboxed, with limits

        text = render_chat_template(tokenizer, messages, add_generation_prompt=True, template=template)
    else:
        text = prompt
    return tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"][0]


def _greedy(model, tokenizer, ids, max_new_tokens: int):
    import torch

    from engine.models.loading import end_of_turn_ids

    device = next(model.parameters()).device
    with torch.no_grad():
        out = model.generate(
            input_ids=ids[None].to(device),
            attention_mask=torch.ones_like(ids[None]).to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=end_of_turn_ids(tokenizer, model),
            pad_token_id=tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
        )
    return out[0, len(ids) :].cpu()


def _logits(model, full, prompt_len: int):
    """Next-token logits (float32, CPU) at every position that predicts a continuation token."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=full[None].to(device)).logits[0]
    return (
        logits[prompt_len - 1 : len(full) - 1].float().cpu()
        if len(full) > prompt_len
        else logits[prompt_len - 1 :].float().cpu()
    )


def _load_merged(folder: Path, dtype, trust_remote_code: bool = False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models.loading import pick_device

    model = AutoModelForCausalLM.from_pretrained(
        str(folder),
        dtype=dtype,
        device_map={"": pick_device()},
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(
        str(folder), local_files_only=True, trust_remote_code=trust_remote_code
    )
    return model, tokenizer, tokenizer.chat_template


def _gguf_metadata(path: Path) -> dict:
    """The two keys the check needs; read once per file version (GGUFReader parses the whole vocabulary)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return {}
    return _gguf_metadata_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _gguf_metadata_cached(path: str, _mtime_ns: int, _size: int) -> dict:
    try:
        from gguf import GGUFReader

        reader = GGUFReader(path)
        out = {}
        for key in ("general.file_type", "tokenizer.chat_template"):
            field = reader.get_field(key)
            if field is not None:
                out[key] = field.contents()
        return out
    except Exception:  # metadata is an aid for the verdict, never a reason to crash the check
        return {}


def _gguf_key(path: Path) -> str:
    file_type = _gguf_metadata(path).get("general.file_type")
    # llama.cpp's LlamaFileType: 0 ALL_F32, 1 MOSTLY_F16, 32 MOSTLY_BF16, 7 MOSTLY_Q8_0.
    return {0: "gguf-16", 1: "gguf-16", 32: "gguf-16", 7: "gguf-q8_0"}.get(file_type, "gguf-other")


def _load_gguf(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models.loading import pick_device

    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent),
        gguf_file=path.name,
        dtype=torch.float32,
        device_map={"": pick_device()},
        local_files_only=True,
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    # llama.cpp and Ollama read the template from the GGUF metadata: test exactly that copy.
    template = _gguf_metadata(path).get("tokenizer.chat_template") or tokenizer.chat_template
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, template


def _llama_cpp_results(gguf_file: Path, prompts, ref_texts, max_new_tokens: int) -> list[PromptAgreement]:
    """Optional second reader: llama.cpp itself (text only). Skipped when llama-cpp-python is absent."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return []
    llm = Llama(model_path=str(gguf_file), verbose=False, n_ctx=512)
    out = []
    for prompt, ref_text in zip(prompts, ref_texts, strict=True):
        reply = llm.create_chat_completion(
            [{"role": "user", "content": prompt}], temperature=0.0, top_k=1, max_tokens=max_new_tokens
        )
        text = reply["choices"][0]["message"]["content"] or ""
        # llama.cpp drops a token's incomplete UTF-8 bytes where transformers writes U+FFFD:
        # compare without them.
        mine, theirs = (t.replace("\ufffd", "").strip() for t in (text, ref_text))
        # llama.cpp's kernels differ (e.g. int8 activations for q8_0), so only a reply that shares
        # nothing fails.
        same = mine == theirs
        shared = bool(theirs) and mine[:8] == theirs[:8]
        out.append(
            PromptAgreement(
                f"[llama.cpp] {prompt}",
                ref_text,
                text,
                same,
                float("nan"),
                float("nan"),
                same or shared or not theirs,
            )
        )
    return out
