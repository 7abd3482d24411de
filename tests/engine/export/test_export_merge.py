"""Merged export of a real (tiny) run, and the after-export check that compares it with base + adapter."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from testkit.tiny_model import CHAT_TEMPLATE, FACTS

from engine.errors import ModelError
from engine.export.check import check_export
from engine.export.merge import merge_adapter, resolve_export_source

PROMPTS = [FACTS[0][0], "What is Whetstone?"]


@pytest.fixture(scope="module")
def run_dir(short_run):
    """The shared short real QLoRA run (checkpoints at steps 4 and 8; see tests/conftest.py)."""
    return short_run


@pytest.fixture(scope="module")
def merged_dir(run_dir, tmp_path_factory):
    return merge_adapter(resolve_export_source(run_dir), tmp_path_factory.mktemp("merged-out") / "merged")


def test_a_run_an_adapter_and_a_checkpoint_resolve_to_base_and_adapter(run_dir, tiny_model_dir, tmp_path):
    base = tiny_model_dir.resolve()
    src = resolve_export_source(run_dir)
    assert (src.base_model, src.adapter_dir, src.run_dir) == (base, run_dir / "adapter", run_dir)
    assert src.config is not None and src.config.training.max_steps == 8
    src = resolve_export_source(run_dir / "adapter")
    assert (src.base_model, src.adapter_dir, src.run_dir) == (base, run_dir / "adapter", run_dir)
    checkpoint = run_dir / "checkpoints" / "checkpoint-4"
    src = resolve_export_source(checkpoint)
    assert (src.base_model, src.adapter_dir, src.run_dir) == (base, checkpoint, run_dir)

    # A stopped run (no adapter/ yet) exports its latest complete checkpoint.
    stopped = tmp_path / "stopped"
    shutil.copytree(run_dir, stopped, ignore=shutil.ignore_patterns("adapter"))
    assert resolve_export_source(stopped).adapter_dir == stopped / "checkpoints" / "checkpoint-8"
    # A bare adapter folder (no run around it) names its base in adapter_config.json.
    bare = shutil.copytree(run_dir / "adapter", tmp_path / "bare-adapter")
    src = resolve_export_source(bare)
    assert (src.base_model, src.run_dir, src.config) == (base, None, None)


def test_folders_that_are_not_runs_are_refused_with_a_hint(run_dir, tiny_model_dir, tmp_path):
    for bad in (tmp_path, tiny_model_dir, tmp_path / "missing"):
        with pytest.raises(ModelError) as info:
            resolve_export_source(bad)
        assert info.value.hint
    incomplete = shutil.copytree(run_dir, tmp_path / "run-copy") / "checkpoints" / "checkpoint-8"
    (incomplete / "whetstone-complete.json").unlink()
    with pytest.raises(ModelError, match="incomplete"):
        resolve_export_source(incomplete)
    moved = shutil.copytree(run_dir / "adapter", tmp_path / "orphan")
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "someone/hub-model"
    (moved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="not a local folder"):
        resolve_export_source(moved)


def test_the_merged_model_gives_base_plus_adapter_logits_and_answers(run_dir, merged_dir):
    report = check_export(resolve_export_source(run_dir), merged_dir=merged_dir, prompts=PROMPTS)
    assert report.kind == "merged" and report.passed, report.summary_lines()
    for p in report.prompts:
        assert p.same_text and p.top1_agreement == 1.0 and p.max_abs_logit_diff < 1e-3
        assert p.reference_text
    assert len(report.summary_lines()) == len(PROMPTS) + 1


def test_the_merged_folder_is_a_plain_transformers_model_with_stop_ids_and_template(
    merged_dir, tiny_model_dir
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models.loading import end_of_turn_ids

    assert not list(merged_dir.parent.glob(".*"))  # no staging folder left beside it
    assert (merged_dir / "model.safetensors").is_file() and not list(merged_dir.glob("*.bin"))
    model = AutoModelForCausalLM.from_pretrained(str(merged_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    assert tokenizer.chat_template == CHAT_TEMPLATE
    stops = json.loads((merged_dir / "generation_config.json").read_text())["eos_token_id"]
    vocab = tokenizer.get_vocab()
    assert set(stops) == set(end_of_turn_ids(tokenizer)) == {vocab["<|im_end|>"], vocab["<|endoftext|>"]}
    assert model.dtype == torch.float32 and "quantization_config" not in model.config.to_dict()
    # The adapter really is in the weights: the merged logits are not the base's.
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    ids = torch.tensor([[1, 5, 9, 20, 33, 2]])
    with torch.no_grad():
        assert (model(input_ids=ids).logits - base(input_ids=ids).logits).abs().max() > 0.1


def test_a_damaged_export_fails_the_check(run_dir, merged_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    damaged = shutil.copytree(merged_dir, tmp_path / "damaged")
    weights = load_file(damaged / "model.safetensors")
    weights["model.layers.1.mlp.down_proj.weight"] *= 1.5
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    report = check_export(resolve_export_source(run_dir), merged_dir=damaged, prompts=PROMPTS)
    assert not report.passed
    assert max(p.max_abs_logit_diff for p in report.prompts) > report.tolerance
    assert "FAILED" in report.summary_lines()[-1]


def test_cli_export_merged_prints_agreement_lines(run_dir, tmp_path, capsys):
    from engine.cli.main import main

    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--merged", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert (out / "model.safetensors").is_file()
    assert stdout.count("max logit diff") == 4 and "Export check (merged) passed" in stdout
    assert stdout.strip().splitlines()[-1] == str(out)


def test_cli_progress_json_lines_end_with_check_and_done(run_dir, tmp_path, capsys):
    from engine.cli.main import main

    out = tmp_path / "out"
    assert main(["export", str(run_dir / "adapter"), "--merged", str(out), "--progress-json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [next(iter(obj)) for obj in lines]
    assert kinds[-2:] == ["check", "done"] and set(kinds[:-2]) == {"progress"}
    fractions = [obj["progress"] for obj in lines if "progress" in obj]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert lines[-2]["check"]["passed"] is True and len(lines[-2]["check"]["prompts"]) == 4
    assert lines[-1]["done"] == str(out)


def test_cli_refuses_an_existing_output_and_bad_sources_with_one_line(run_dir, tmp_path, capsys):
    from engine.cli.main import main

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    for argv in (
        ["export", str(run_dir), "--merged", str(existing)],
        ["export", str(tmp_path / "nope"), "--merged", str(tmp_path / "o")],
        ["export", str(run_dir), "--merged", str(tmp_path / "o"), "--ollama"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
    assert (existing / "keep.txt").read_text() == "mine"


def test_cli_exits_2_when_the_check_fails_and_keeps_the_files(run_dir, tmp_path, capsys, monkeypatch):
    from engine.cli.main import main
    from engine.export import merge

    real = merge.merge_adapter

    def merge_badly(source, out_dir, **kwargs):
        out = real(source, out_dir, **kwargs)
        model = __import__("transformers").AutoModelForCausalLM.from_pretrained(str(out))
        with torch.no_grad():
            model.lm_head.weight.mul_(2.0)
        model.save_pretrained(str(out))
        return out

    monkeypatch.setattr(merge, "merge_adapter", merge_badly)
    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--merged", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # progress lines, then exactly one error line
    assert [line for line in err if line.startswith("error:")] == err[-1:]
    assert err[-1].startswith("error: export check failed: ") and str(out) in err[-1]
    assert (out / "model.safetensors").is_file()


def test_cancel_during_merge_leaves_nothing(run_dir, tmp_path):
    from engine.data.stats import Cancelled

    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) >= 4  # after the safetensors are written into staging, before the move

    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        merge_adapter(resolve_export_source(run_dir), out, cancel=cancel)
    assert len(calls) == 4
    assert list(tmp_path.iterdir()) == []


def test_cli_export_gguf_f16_passes_the_check_and_removes_its_temporary_merge(run_dir, tmp_path, capsys):
    pytest.importorskip("engine.export.gguf_write")
    from engine.cli.main import main

    out = tmp_path / "model.gguf"
    assert main(["export", str(run_dir), "--gguf", str(out), "--quant", "f16", "--progress-json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    check = lines[-2]["check"]
    assert check["kind"] == "gguf" and check["passed"], check
    assert all(p["top1_agreement"] == 1.0 for p in check["prompts"])
    assert lines[-1] == {"done": str(out), "card": str(tmp_path / "model.README.md")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.README.md", "model.gguf"]


def test_a_disk_without_room_is_refused_before_anything_is_written(run_dir, tmp_path, capsys, monkeypatch):
    import shutil as shutil_module
    from collections import namedtuple

    from engine.cli.main import main

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda _path: usage(10**12, 10**12 - 1000, 1000))
    for argv in (
        ["export", str(run_dir), "--merged", str(tmp_path / "merged")],
        ["export", str(run_dir), "--gguf", str(tmp_path / "model.gguf"), "--quant", "q8_0"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: Not enough disk space") and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # two GGUF exports checked
def test_a_quantized_gguf_is_judged_against_the_same_rounding_and_a_writer_bug_fails(
    run_dir, merged_dir, tmp_path, monkeypatch
):
    from engine.export import gguf_write
    from engine.export.check import WRITER_TOLERANCE, check_export

    source = resolve_export_source(run_dir)
    good = gguf_write.write_gguf(merged_dir, tmp_path / "good.gguf", "q4_0")
    report = check_export(source, gguf_file=good, max_new_tokens=8)
    assert report.passed, report.summary_lines()
    assert all(
        p.writer_max_abs_logit_diff < 1e-3 for p in report.prompts
    )  # only float summation order differs
    assert any("vs the same rounding" in line for line in report.summary_lines())
    changed = sum(not p.same_text for p in report.prompts)  # what 4-bit rounding costs is reported, loudly
    assert report.as_dict()["rounding_changed_answers"] == changed
    assert any(line.startswith("Warning: the file is right") for line in report.summary_lines()) == (
        changed > 0
    )

    # A writer bug (q/k rows left in Hugging Face order instead of llama.cpp's rotary layout) must fail.
    monkeypatch.setattr(gguf_write, "_permute", lambda weights, heads: weights)
    bad = gguf_write.write_gguf(merged_dir, tmp_path / "bad.gguf", "q4_0")
    report = check_export(source, gguf_file=bad, max_new_tokens=8)
    assert not report.passed
    assert max(p.writer_max_abs_logit_diff for p in report.prompts) > WRITER_TOLERANCE[0]
