"""One evaluation: the base and each adapter on the eval sets, validation data and probes → a report.

A full fine-tuning run's model is a column like an adapter's (engine.eval.scoring loads it beside
the base); it must share the base's tokenizer, which encodes every column's prompts.

`Evaluation(request)` checks everything that needs no torch first (model folder, adapters, set
files, validation data), so bad input fails in milliseconds; `run()` then loads the base once
with every adapter beside it and fills the report (see engine.eval.report for its shape).
Greedy and seeded: the same request gives the same report, apart from the times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.config import ModelConfig, QuantizationConfig, RunConfig, load_config
from engine.errors import ConfigError, ModelError, UserError
from engine.eval import probes
from engine.eval.cache import AnswerCache
from engine.eval.report import FORMAT_VERSION, now_iso
from engine.eval.scorers import score_reply
from engine.eval.sets import EvalItem, EvalSet, read_eval_set
from engine.eval.targets import BASE_LABEL, EvalTarget, resolve_target, unique_labels
from engine.models.adapters import AdapterFolder, check_adapter
from engine.models.folder import ModelFolder
from engine.models.loading import inspect_model_folder, pick_device

MAX_NEW_TOKENS = 64


@dataclass
class EvalRequest:
    """What to evaluate. `validation`: a data file, "run" (the first run's own validation rows) or None."""

    model: str
    adapters: list[str] = field(default_factory=list)
    include_base: bool = True
    sets: list[str] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    validation: str | None = "run"
    max_new_tokens: int = MAX_NEW_TOKENS
    seed: int = 0
    batch_size: int = 16
    device: str | None = None
    cache_dir: Path | None = None
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)


class _Progress:
    """Units of work done out of a total, reported as a fraction with the current stage's name."""

    def __init__(self, report: Callable[[float, str], None]) -> None:
        self.report, self.total, self.done, self.stage = report, 1, 0, ""

    def begin(self, stage: str) -> None:
        self.stage = stage
        self.report(min(self.done / self.total, 1.0), stage)

    def advance(self, units: int) -> None:
        self.done += units
        self.report(min(self.done / self.total, 1.0), self.stage)


class Evaluation:
    """The state of one evaluation, held in one object (no long argument chains)."""

    def __init__(self, request: EvalRequest, progress: Callable[[float, str], None] | None = None) -> None:
        if request.max_new_tokens < 1 or request.max_new_tokens > 4096:
            raise ConfigError(f"--max-new-tokens must be 1..4096 (got {request.max_new_tokens}).")
        for probe in request.probes:
            if probe not in probes.PROBES:
                raise ConfigError(f"Unknown probe {probe!r}.", f"Choose from: {', '.join(probes.PROBES)}.")
        self.request = request
        self.progress = _Progress(progress or (lambda _f, _m: None))
        self.model_cfg = ModelConfig(path=str(Path(request.model).expanduser()))
        self.folder = inspect_model_folder(self.model_cfg)
        self.targets = unique_labels([resolve_target(a) for a in request.adapters])
        for target in self.targets:
            self._check_target(target)
        if not request.include_base and not self.targets:
            raise ConfigError("--no-base leaves nothing to evaluate.", "Add an --adapter, or drop --no-base.")
        self.sets: list[EvalSet] = [read_eval_set(path) for path in request.sets]
        names = [s.name for s in self.sets]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(f"Two eval sets are named {name!r}.", "Rename one of the files.")
        self.run_config = self._run_config()
        self.device = request.device or pick_device()
        self.quantization = _inference_quantization(request.quantization, self.device)
        # A set's bad lines are left out of its score: the report says which, or the score would
        # silently cover fewer items than the file holds.
        self.notes: list[str] = [note for s in self.sets if (note := s.skipped_note())]

    def _check_target(self, target: EvalTarget) -> AdapterFolder | ModelFolder:
        """An adapter that fits the base, or a full fine-tuned model that shares its tokenizer."""
        if target.kind != "model":
            adapter = check_adapter(target.adapter, self.folder, self.model_cfg.allow_pickle_weights)
            adapter.require_lora("the evaluation")
            return adapter
        full = inspect_model_folder(replace(self.model_cfg, path=str(target.adapter)))
        for key in ("model_type", "vocab_size"):
            if full.config.get(key) != self.folder.config.get(key):
                raise ModelError(
                    f"The model in {full.path} was not trained from {self.folder.path}: its {key} is "
                    f"{full.config.get(key)!r}, the base's {self.folder.config.get(key)!r}.",
                    "Evaluate it with the base model its run was trained from (--model).",
                )
        return full

    def _run_config(self) -> RunConfig | None:
        run = next((t.run for t in self.targets if t.run), None)
        return load_config(run / "config.toml") if run else None

    # ---- the whole evaluation

    def run(self) -> dict[str, Any]:
        import torch

        from engine.eval.scoring import ScoringModel

        torch.manual_seed(self.request.seed)
        self.progress.begin("Loading the model…")
        adapters = [self._check_target(t) for t in self.targets]
        self.scoring = ScoringModel.load(
            self.model_cfg, self.quantization, adapters, self.device, self.request.batch_size
        )
        self.columns: list[tuple[EvalTarget, str | None]] = []
        if self.request.include_base:
            self.columns.append((EvalTarget(BASE_LABEL), None))
        self.columns += [(t, f"adapter-{i}") for i, t in enumerate(self.targets)]
        validation_rows = self._validation_rows()
        forgetting = probes.forgetting_set() if "forgetting" in self.request.probes else None
        pairs = probes.bias_pairs() if "bias" in self.request.probes else []
        self._plan(validation_rows, forgetting, pairs)

        models = []
        for target, adapter in self.columns:
            started = time.perf_counter()
            entry: dict[str, Any] = {**target.to_json(), "sets": {}, "validation": None, "probes": {}}
            for eval_set in self.sets:
                self.progress.begin(f"{target.label}: {eval_set.name}")
                entry["sets"][eval_set.name] = self._score_set(eval_set, adapter)
            if validation_rows:
                self.progress.begin(f"{target.label}: validation loss")
                entry["validation"] = self._validation(validation_rows, adapter)
            entry["seconds"] = round(time.perf_counter() - started, 2)
            models.append(entry)
        if forgetting is not None:
            from engine.eval.forgetting import ForgettingProbe

            results = ForgettingProbe(self, forgetting).run()
            for entry, result in zip(models, results, strict=True):
                entry["probes"]["forgetting"] = result
        if pairs:
            from engine.eval.bias import bias_probe

            for entry, result in zip(models, bias_probe(self, pairs), strict=True):
                entry["probes"]["bias"] = result
        self.progress.report(1.0, "Done")
        return {
            "format": FORMAT_VERSION,
            "created": now_iso(),
            "settings": self._settings(),
            "models": models,
            "notes": self.notes,
        }

    def _plan(self, validation_rows, forgetting, pairs) -> None:
        per_column = sum(len(s.items) + sum(len(i.choices) for i in s.items) for s in self.sets)
        per_column += len(validation_rows) + 2 * len(pairs)
        total = per_column * len(self.columns)
        if forgetting is not None:
            total += len(forgetting.items) * (2 + len(self.targets))
        self.progress.total = max(total, 1)

    def _settings(self) -> dict[str, Any]:
        request = self.request
        return {
            "model": str(self.folder.path),
            "max_new_tokens": request.max_new_tokens,
            "seed": request.seed,
            "device": self.device,
            "load_in_4bit": self.quantization.load_in_4bit,
            "compute_dtype": self.quantization.compute_dtype,
            "sets": {s.name: str(s.path) for s in self.sets},
            "probes": list(request.probes),
            "validation": self._validation_label(),
        }

    def _validation_label(self) -> str | None:
        if self.request.validation in (None, "run"):
            return "run" if self.run_config is not None and self.request.validation == "run" else None
        return str(Path(self.request.validation).expanduser().resolve())

    # ---- eval sets

    def conversation_ids(self, item: EvalItem) -> list[int]:
        return self.scoring.prompt_ids([dict(m) for m in item.messages])

    def _score_set(self, eval_set: EvalSet, adapter: str | None) -> dict[str, Any]:
        scoring = self.scoring
        generated = [item for item in eval_set.items if item.scorer != "choice"]
        answers = self._set_answers(generated, adapter)
        replies = {item.index: scoring.decode(ids) for item, ids in zip(generated, answers, strict=True)}
        items = []
        for item in eval_set.items:
            if item.scorer == "choice":
                reply, passed = self._choose(item, adapter)
            else:
                reply = replies[item.index]
                passed = score_reply(item, reply)
            items.append(
                {
                    "index": item.index,
                    "name": item.name,
                    "category": item.category,
                    "prompt": item.prompt,
                    "answer": reply,
                    "expected": item.expected,
                    "scorer": item.scorer,
                    "passed": passed,
                }
            )
        return summarize_items(items)

    def _set_answers(self, items: list[EvalItem], adapter: str | None) -> list[list[int]]:
        """Greedy answers to a set's items; the base's come from the cache when the items, the
        model folder and the settings are the ones they were generated with."""
        prompts = [self.conversation_ids(item) for item in items]
        cache = self.answer_cache() if adapter is None else None
        parts = {**self.cache_parts("set"), "items": [item.to_json() for item in items]}
        if cache is not None and (cached := cache.get("set", parts, len(items))) is not None:
            self.progress.advance(len(items))
            return cached
        with self.scoring.use(adapter):
            answers = self.scoring.generate(prompts, self.request.max_new_tokens, self.progress.advance)
        if cache is not None:
            cache.put("set", parts, answers)
        return answers

    def _choose(self, item: EvalItem, adapter: str | None) -> tuple[str, bool]:
        """Multiple choice by the log-likelihood of each choice as the reply (summed over its tokens)."""
        prompt = self.conversation_ids(item)
        pairs = [(prompt, self.scoring.text_ids(choice, special=False)) for choice in item.choices]
        scores = self.scoring.continuation_logprobs(pairs, adapter, self.progress.advance)
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        return item.choices[best], best == item.choice_index

    # ---- validation loss

    def _validation_rows(self) -> list[dict[str, list[int]]]:
        from engine.config import DataConfig
        from engine.data.prepare import prepare_data

        value = self.request.validation
        try:
            if value == "run":
                if self.run_config is None:
                    return []
                rows = prepare_data(self.scoring.tokenizer, self.run_config.data).validation
                if not rows:
                    self.notes.append("The run had no validation data, so there is no validation loss.")
                return rows
            if value:
                cfg = DataConfig(path=str(Path(value).expanduser()), validation_ratio=0.0)
                prepared = prepare_data(self.scoring.tokenizer, cfg)
                return prepared.train + prepared.validation
        except UserError as exc:
            if value != "run":
                raise
            self.notes.append(f"No validation loss: the run's data cannot be read ({exc.one_line()})")
        return []

    def _validation(self, rows, adapter: str | None) -> dict[str, Any]:
        import math

        loss, tokens = self.scoring.mean_loss(rows, adapter, self.progress.advance)
        return {
            "loss": round(loss, 5),
            "perplexity": round(math.exp(min(loss, 50.0)), 4),
            "rows": len(rows),
            "tokens": tokens,
        }

    def answer_cache(self) -> AnswerCache:
        from engine.eval.cache import default_cache_dir

        return AnswerCache(self.request.cache_dir or default_cache_dir())

    def cache_parts(self, probe: str) -> dict[str, Any]:
        return {
            "probe": probe,
            "version": probes.VERSIONS.get(probe, 1),
            "model": self.folder.fingerprint(),
            "max_new_tokens": self.request.max_new_tokens,
            "device": self.device,
            "quantization": vars(self.quantization),
            "batch_size": self.request.batch_size,
        }


def _inference_quantization(quant: QuantizationConfig, device: str) -> QuantizationConfig:
    """On a CPU with bf16 in hardware, "auto" computes in bf16 here: no gradients to spoil (the
    training path keeps fp32), and the evaluation's forward passes run about twice as fast."""
    from dataclasses import replace

    from engine.models.loading import cpu_has_native_bf16

    if device == "cpu" and quant.compute_dtype == "auto" and cpu_has_native_bf16():
        return replace(quant, compute_dtype="bf16")
    return quant


def summarize_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [i for i in items if i["passed"] is not None]
    passed = sum(bool(i["passed"]) for i in scored)
    return {
        "score": round(passed / len(scored), 4) if scored else None,
        "passed": passed,
        "scored": len(scored),
        "total": len(items),
        "items": items,
    }
