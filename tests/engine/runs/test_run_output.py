"""Which output a run (or a picked folder) has: a LoRA adapter/ or a full fine-tuning run's model/."""

from __future__ import annotations

from pathlib import Path

from engine.runs.output import Output, folder_output, owning_run, run_output


def _run(tmp_path: Path, name: str = "run") -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / "config.toml").write_text("")
    (run / "events.jsonl").write_text("")
    return run


def _model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    return folder


def _adapter(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def test_a_lora_run_has_its_adapter_and_a_full_run_its_model(tmp_path):
    lora, full = _run(tmp_path, "lora"), _run(tmp_path, "full")
    _adapter(lora / "adapter")
    _model(full / "model")
    assert run_output(lora) == Output("adapter", lora / "adapter")
    assert run_output(full) == Output("model", full / "model")
    assert folder_output(full) == Output("model", full / "model")
    assert folder_output(full / "model") == Output("model", full / "model")
    assert owning_run(full / "model") == (full, None)


def test_a_run_without_an_output_yet_has_none(tmp_path):
    run = _run(tmp_path)
    (run / "model").mkdir()  # a model/ without config.json and weights is not a model
    assert run_output(run) is None and folder_output(run) is None


def test_checkpoints_of_either_kind(tmp_path):
    run = _run(tmp_path)
    lora = _adapter(run / "checkpoints" / "checkpoint-4")
    full = _model(run / "checkpoints" / "checkpoint-8")
    assert folder_output(lora) == Output("adapter", lora)
    assert folder_output(full) == Output("model", full)
    assert owning_run(full) == (run, 8)


def test_a_model_folder_outside_a_run_is_no_output_and_an_adapter_never_is_a_model(tmp_path):
    model = _model(tmp_path / "merged")  # a base or a merged export: picked as a model, not an output
    assert folder_output(model) is None and owning_run(model) == (None, None)
    both = _adapter(tmp_path / "lora")
    (both / "config.json").write_text("{}")  # some adapters carry the base's config beside them
    assert folder_output(both).kind == "adapter"
    assert folder_output(tmp_path / "nothing-here") is None
