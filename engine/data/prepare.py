"""From data files to tokenized train/validation rows plus a report of what was dropped."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.config import AUTO_VALIDATION_MIN_ROWS, AUTO_VALIDATION_RATIO, PREFERENCE_METHODS, DataConfig
from engine.data.preference import as_rated, tokenize_preference
from engine.data.reading import ReadResult, read_data
from engine.data.rendering import IGNORE_INDEX
from engine.data.tokenizing import iter_rendered
from engine.errors import DataError


@dataclass
class DataReport:
    rows_read: int = 0
    rows_used: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    first_problems: list[str] = field(default_factory=list)
    truncated_rows: int = 0
    truncated_tokens: int = 0
    longest_truncated_by: int = 0
    tokens: int = 0
    trained_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def start(self, read: ReadResult) -> Counter:
        """Count a file's rows and unreadable ones in; returns the skip counter to add to."""
        self.first_problems += [f"{p.where()}: {p.message}" for p in read.problems if p.severity == "error"][
            :20
        ]
        self.rows_read += read.records
        return Counter(read.skipped_by_reason())

    def truncated(self, tokens: int) -> None:
        if tokens:
            self.truncated_rows += 1
            self.truncated_tokens += tokens
            self.longest_truncated_by = max(self.longest_truncated_by, tokens)

    def finish(self, skipped: Counter) -> None:
        for reason, count in skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count


@dataclass
class PreparedData:
    train: list[dict[str, list[int]]]
    validation: list[dict[str, list[int]]]
    format: str
    report: DataReport
    validation_source: str = ""  # "file", "ratio", "auto", or "" without validation rows


def validation_share(cfg: DataConfig, rows: int) -> tuple[float, str]:
    """The share of `rows` training rows to hold out, and why: "ratio" (set), "auto", or none."""
    if cfg.validation_ratio == "auto":
        if rows >= AUTO_VALIDATION_MIN_ROWS:
            return AUTO_VALIDATION_RATIO, "auto"
        return 0.0, ""
    return (float(cfg.validation_ratio), "ratio") if cfg.validation_ratio > 0 else (0.0, "")


def held_out_count(rows: int, share: float) -> int:
    """How many of `rows` rows a share holds out (at least one, never all)."""
    return min(rows - 1, max(1, round(rows * share))) if share > 0 and rows >= 2 else 0


def read_config_data(cfg: DataConfig, path: str | None = None) -> ReadResult:
    if not (path or cfg.path):
        raise DataError("No training data given.", "Pass --data FILE.")
    return read_data(path or cfg.path, cfg.format, cfg.columns, cfg.text_mode)


def _tokenize(tokenizer, read: ReadResult, cfg: DataConfig, report: DataReport) -> list[dict]:
    skipped = report.start(read)
    examples = []
    results = (r for batch in iter_rendered(tokenizer, read.rows, cfg.max_length) for r in batch)
    for rendered, number, line in zip(results, read.row_numbers, read.line_numbers, strict=True):
        where = f"line {line}" if line is not None else f"row {number}"
        if isinstance(rendered, ValueError):
            skipped["unrenderable"] += 1
            report.first_problems.append(f"{where}: {rendered}")
            continue
        if rendered.trained_tokens == 0:
            reason = (
                "no trainable tokens after truncation" if rendered.truncated_tokens else "no trainable tokens"
            )
            skipped[reason] += 1
            report.first_problems.append(f"{where}: {reason}")
            continue
        report.truncated(rendered.truncated_tokens)
        report.tokens += len(rendered.input_ids)
        report.trained_tokens += rendered.trained_tokens
        examples.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    report.finish(skipped)
    return examples


def _tokenize_preference(tokenizer, read: ReadResult, cfg: DataConfig, report: DataReport, method: str):
    """Preference rows as the trainers take them (engine.data.preference); kto rates the sides of pairs."""
    skipped = report.start(read)
    examples = []
    for row, number, line in zip(read.rows, read.row_numbers, read.line_numbers, strict=True):
        where = f"line {line}" if line is not None else f"row {number}"
        for item in as_rated(row) if method == "kto" else [row]:
            done = tokenize_preference(tokenizer, item, cfg.max_length)
            if done.example is None:
                reason = done.problem.split(":")[0]
                skipped[reason] += 1
                report.first_problems.append(f"{where}: {done.problem}")
                continue
            report.truncated(done.truncated_tokens)
            report.tokens += done.tokens
            report.trained_tokens += done.tokens - len(done.example["prompt_ids"]) * (
                2 if "chosen_ids" in done.example else 1
            )
            examples.append(done.example)
    report.finish(skipped)
    return examples


def prepare_data(
    tokenizer, cfg: DataConfig, read: ReadResult | None = None, method: str = "sft"
) -> PreparedData:
    """Tokenize the training (and validation) rows; `read` is the already-read training file, if any.

    `method` (training.method): preference methods get {prompt_ids, chosen_ids, rejected_ids} pairs
    (kto: {prompt_ids, completion_ids, label}); every other method input_ids with labels.
    """
    report = DataReport()
    read = read or read_config_data(cfg)
    if method in PREFERENCE_METHODS:
        tokenize = lambda tok, rows, c, rep: _tokenize_preference(tok, rows, c, rep, method)  # noqa: E731
    else:
        tokenize = _tokenize
    train = tokenize(tokenizer, read, cfg, report)
    source = ""
    if cfg.validation_path:
        validation = tokenize(tokenizer, read_config_data(cfg, cfg.validation_path), cfg, report)
        source = "file" if validation else ""
    else:
        validation = []
        share, why = validation_share(cfg, len(train))
        n_val = held_out_count(len(train), share)
        if n_val:
            order = list(range(len(train)))
            random.Random(cfg.seed).shuffle(order)
            held = set(order[:n_val])
            validation = [train[i] for i in sorted(held)]
            train = [ex for i, ex in enumerate(train) if i not in held]
            source = why
    if not train:
        first = f" First: {report.first_problems[0]}." if report.first_problems else ""
        raise DataError(
            f"No row of {cfg.path} can be trained on.{first}", "Fix the rows or raise data.max_length."
        )
    report.rows_used = len(train) + len(validation)
    return PreparedData(
        train=train, validation=validation, format=read.format, report=report, validation_source=source
    )


class PadCollator:
    """Pads a batch to its longest row. Labels of padding are IGNORE_INDEX, whatever the pad id is."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 1) -> None:
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        longest = -(-longest // self.multiple) * self.multiple
        ids, labels, mask = [], [], []
        for f in features:
            pad = longest - len(f["input_ids"])
            ids.append(f["input_ids"] + [self.pad_token_id] * pad)
            labels.append(f["labels"] + [IGNORE_INDEX] * pad)
            mask.append([1] * len(f["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


class PaddingFreeCollator:
    """Packs a batch into one row with no padding; position_ids restart at 0 for every sequence.

    transformers builds a block-diagonal causal mask from those position ids (SDPA, eager and
    flash attention), so sequences never attend to each other and no compute is spent on padding.
    """

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        ids, labels, positions = [], [], []
        for f in features:
            ids += f["input_ids"]
            # The first token of a sequence must not be predicted from the end of the previous one.
            labels += [IGNORE_INDEX] + f["labels"][1:]
            positions += range(len(f["input_ids"]))
        return {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
        }
