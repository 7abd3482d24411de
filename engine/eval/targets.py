"""What `--adapter` names: a run folder (its final adapter), a checkpoint folder or an adapter folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelError
from engine.models.adapters import resolve_adapter_dir
from engine.runs.names import run_display_name

BASE_LABEL = "Base model"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class EvalTarget:
    """One column of the report: the base (no adapter) or an adapter with where it came from."""

    label: str
    adapter: Path | None = None
    run: Path | None = None  # the run folder the adapter belongs to, if any
    step: int | None = None  # the checkpoint's step; None for a run's final adapter

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "adapter": str(self.adapter) if self.adapter else None,
            "run": str(self.run) if self.run else None,
            "step": self.step,
        }


def is_run_folder(path: Path) -> bool:
    return (path / "events.jsonl").is_file() and (path / "config.toml").is_file()


def resolve_target(value: str | Path) -> EvalTarget:
    """The adapter behind a path, labelled for a person; ModelError when there is none."""
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise ModelError(
            f"{path} does not exist.", "Pass a run folder, a checkpoint folder or an adapter folder."
        )
    match = _CHECKPOINT.match(path.name)
    if match and path.parent.name == "checkpoints" and is_run_folder(path.parent.parent):
        run, step = path.parent.parent, int(match.group(1))
        return EvalTarget(f"{run_display_name(run)} · step {step}", resolve_adapter_dir(path), run, step)
    if is_run_folder(path):
        if not (path / "adapter").is_dir():
            raise ModelError(
                f"The run {run_display_name(path)} has no final adapter yet.",
                "Wait until it ends, or pass one of its checkpoints (RUN_DIR/checkpoints/checkpoint-N).",
            )
        return EvalTarget(run_display_name(path), resolve_adapter_dir(path), path, None)
    if path.name == "adapter" and is_run_folder(path.parent):
        return EvalTarget(run_display_name(path.parent), resolve_adapter_dir(path), path.parent, None)
    return EvalTarget(path.name, resolve_adapter_dir(path))


def unique_labels(targets: list[EvalTarget]) -> list[EvalTarget]:
    """Two columns never share a label (two runs with the same name get "(2)")."""
    seen: dict[str, int] = {BASE_LABEL: 1}
    out = []
    for target in targets:
        label = target.label
        if label in seen:
            seen[label] += 1
            label = f"{label} ({seen[label]})"
        seen[label] = 1
        out.append(EvalTarget(label, target.adapter, target.run, target.step))
    return out
