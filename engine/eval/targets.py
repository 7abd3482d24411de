"""What `--adapter` names: a run folder (its final adapter or, for a full fine-tuning run, its
model), a checkpoint folder, an adapter folder or a full run's model folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelError
from engine.models.adapters import resolve_adapter_dir
from engine.runs.names import run_display_name
from engine.runs.output import folder_output, is_run_folder, owning_run

__all__ = ["BASE_LABEL", "EvalTarget", "is_run_folder", "resolve_target", "unique_labels"]

BASE_LABEL = "Base model"


@dataclass(frozen=True)
class EvalTarget:
    """One column of the report: the base (no adapter), an adapter, or a full fine-tuned model."""

    label: str
    adapter: Path | None = None  # the adapter folder, or the full model's folder (kind "model")
    run: Path | None = None  # the run folder the adapter belongs to, if any
    step: int | None = None  # the checkpoint's step; None for a run's final adapter
    kind: str = "adapter"  # "adapter" (on the shared base) or "model" (a whole model of its own)

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "adapter": str(self.adapter) if self.adapter else None,
            "kind": self.kind if self.adapter else None,
            "run": str(self.run) if self.run else None,
            "step": self.step,
        }


def resolve_target(value: str | Path) -> EvalTarget:
    """The adapter (or full model) behind a path, labelled for a person; ModelError when there is none."""
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise ModelError(
            f"{path} does not exist.", "Pass a run folder, a checkpoint folder or an adapter folder."
        )
    run, step = owning_run(path)
    if run is not None and path == run and folder_output(path) is None:
        raise ModelError(
            f"The run {run_display_name(path)} has no final adapter yet.",
            "Wait until it ends, or pass one of its checkpoints (RUN_DIR/checkpoints/checkpoint-N).",
        )
    found = folder_output(path)
    label = run_display_name(run) if run is not None else path.name
    if step is not None:
        label = f"{label} · step {step}"
    if found is not None and found.kind == "model":
        return EvalTarget(label, found.path, run, step, kind="model")
    return EvalTarget(label, resolve_adapter_dir(path), run, step)


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
        out.append(EvalTarget(label, target.adapter, target.run, target.step, target.kind))
    return out
