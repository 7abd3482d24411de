"""Exporting a full fine-tuning run: RUN_DIR/model is exported like a merged model, with no merge."""

from __future__ import annotations

import json
import shutil

import pytest
from testkit.full_run import make_full_run

from engine.errors import ModelError
from engine.export.merge import resolve_export_source
from engine.runs.checkpoints import MARKER


@pytest.fixture(scope="module")
def full_run(tiny_model_dir, tmp_path_factory):
    return make_full_run(tiny_model_dir, tmp_path_factory.mktemp("full") / "run")


def test_a_full_run_resolves_to_its_model_and_its_base(full_run, tiny_model_dir, tmp_path):
    model = full_run / "model"
    for picked in (full_run, model):
        src = resolve_export_source(picked)
        assert (src.kind, src.adapter_dir, src.run_dir) == ("model", model.resolve(), full_run.resolve())
        assert src.base_model == tiny_model_dir.resolve()  # the card describes the base it came from
        assert src.model_config().path == str(model.resolve())
    # A stopped full run (no model/ yet) exports its latest complete checkpoint.
    stopped = shutil.copytree(full_run, tmp_path / "stopped", ignore=shutil.ignore_patterns("model"))
    checkpoint = shutil.copytree(model, stopped / "checkpoints" / "checkpoint-30")
    (checkpoint / MARKER).write_text(json.dumps({"step": 30}))
    src = resolve_export_source(stopped)
    assert (src.kind, src.adapter_dir) == ("model", checkpoint)
    (checkpoint / MARKER).unlink()
    with pytest.raises(ModelError, match="incomplete"):
        resolve_export_source(checkpoint)


def test_an_adapter_gguf_of_a_full_run_is_refused_in_words(full_run):
    from engine.export.gguf_adapter import plan_adapter

    with pytest.raises(ModelError, match="full fine-tuned model") as err:
        plan_adapter(resolve_export_source(full_run))
    assert "--gguf" in err.value.hint


def test_cli_exports_a_full_run_to_gguf_checked_against_its_model(full_run, tmp_path, capsys):
    from engine.cli.main import main

    out = tmp_path / "full.gguf"
    assert main(["export", str(full_run), "--gguf", str(out), "--quant", "f16"]) == 0
    stdout = capsys.readouterr().out
    assert out.is_file() and "Export check (gguf) passed" in stdout
    card = (tmp_path / "full.README.md").read_text()
    assert "A full fine-tune of" in card and "LoRA: r" not in card and "Full fine-tuning" in card
    # A full run has no adapter: the check says what it really compared with.
    assert "agree with the fully tuned model" in card and "base + adapter" not in card + stdout


def test_cli_exports_a_full_run_merged_with_its_weights_unchanged(full_run, tmp_path, capsys):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from engine.cli.main import main

    out = tmp_path / "out"
    assert main(["export", str(full_run / "model"), "--merged", str(out)]) == 0
    assert "Export check (merged) passed" in capsys.readouterr().out
    written = load_file(out / "model.safetensors")
    trained = load_file(full_run / "model" / "model.safetensors")
    assert written.keys() == trained.keys()
    assert all(written[k].float().equal(trained[k].float()) for k in trained)  # fp32 on the CPU: no rounding
    assert AutoTokenizer.from_pretrained(str(out)).chat_template
