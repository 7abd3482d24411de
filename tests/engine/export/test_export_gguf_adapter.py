"""Adapter-only GGUF: a LoRA adapter file llama.cpp loads with --lora, beside a base GGUF.

The strongest check is arithmetic: base GGUF weight + (alpha / r)·B·A from the adapter GGUF,
computed as llama.cpp computes it, equals the merged model's GGUF weight for every tensor.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.cli.main import main
from engine.errors import Cancelled, ModelError
from engine.export.gguf_adapter import (
    check_adapter_gguf,
    check_base_gguf,
    plan_adapter,
    write_adapter_gguf,
)
from engine.export.gguf_write import write_gguf
from engine.export.merge import resolve_export_source, write_merged


@pytest.fixture(scope="module")
def run_dir(short_run):
    """The shared short real QLoRA run (rank 16, alpha 32, all linear layers; see tests/conftest.py)."""
    return short_run


@pytest.fixture(scope="module")
def base_f32(tiny_model_dir, tmp_path_factory) -> Path:
    return write_gguf(tiny_model_dir, tmp_path_factory.mktemp("base") / "base-f32.gguf", "f32")


def _tensors(path: Path) -> dict[str, np.ndarray]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    shape = lambda t: tuple(int(n) for n in reversed(t.shape.tolist()))  # noqa: E731 (numpy order)
    return {t.name: np.asarray(t.data, dtype=np.float32).reshape(shape(t)) for t in reader.tensors}


def _fields(path: Path) -> dict:
    from gguf import GGUFReader

    return {key: field.contents() for key, field in GGUFReader(str(path)).fields.items()}


def _merged_gguf(source, folder: Path) -> Path:
    merged = folder / "merged"
    merged.mkdir()
    write_merged(source, merged)
    return write_gguf(merged, folder / "merged-f32.gguf", "f32")


def _edited_adapter(run_dir: Path, folder: Path, **changes) -> Path:
    adapter = shutil.copytree(run_dir / "adapter", folder)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config.update(changes)
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    return adapter


def _assert_base_plus_lora_is_merged(base_file: Path, adapter_file: Path, merged_file: Path) -> float:
    """W + (alpha / r)·B·A (llama.cpp's arithmetic, r from lora_b) vs the merged GGUF; returns max |delta|."""
    base, lora, merged = _tensors(base_file), _tensors(adapter_file), _tensors(merged_file)
    alpha = float(_fields(adapter_file)["adapter.lora.alpha"])
    assert set(base) == set(merged)
    largest = 0.0
    for name, weight in base.items():
        if name + ".lora_a" in lora:
            a, b = lora[name + ".lora_a"], lora[name + ".lora_b"]
            delta = (alpha / b.shape[1]) * (b.astype(np.float64) @ a.astype(np.float64))
            largest = max(largest, float(np.abs(delta).max()))
            weight = weight + delta
        assert np.abs(weight - merged[name]).max() < 1e-5, name
    return largest


def test_metadata_names_and_shapes_follow_llama_cpp(run_dir, tmp_path, tiny_model_dir):
    from gguf import GGMLQuantizationType, GGUFReader

    source = resolve_export_source(run_dir)
    out = write_adapter_gguf(source, tmp_path / "adapter.gguf")
    fields = _fields(out)
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "llama"  # the base GGUF's, or llama.cpp refuses the pair
    assert fields["adapter.lora.alpha"] == 32.0  # peft's alpha: llama.cpp applies alpha / r as peft does
    assert fields["general.base_model.count"] == 1
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["lora_alpha"] == 32
    reader = GGUFReader(str(out))
    shapes = {t.name: tuple(int(n) for n in reversed(t.shape.tolist())) for t in reader.tensors}
    hidden = json.loads((tiny_model_dir / "config.json").read_text())["hidden_size"]
    assert shapes["blk.0.attn_q.weight.lora_a"] == (16, hidden)
    assert shapes["blk.0.attn_q.weight.lora_b"] == (hidden, 16)
    assert all(t.tensor_type == GGMLQuantizationType.F16 for t in reader.tensors)
    stems = {name.rsplit(".", 1)[0] for name in shapes}
    assert {name.rsplit(".", 1)[1] for name in shapes} == {"lora_a", "lora_b"}
    assert len(shapes) == 2 * len(stems) == 2 * 2 * 7  # 2 layers x q k v o gate up down
    check_base_gguf(plan_adapter(source), write_gguf(tiny_model_dir, tmp_path / "base.gguf", "f16"))
    report = check_adapter_gguf(source, out)
    assert report.passed and report.tensors == 28 and 0 < report.max_abs_diff < 1e-3
    assert report.as_dict()["kind"] == "adapter-gguf" and report.as_dict()["passed"] is True


def test_base_plus_adapter_arithmetic_equals_the_merged_gguf(run_dir, base_f32, tmp_path):
    source = resolve_export_source(run_dir)
    adapter = write_adapter_gguf(source, tmp_path / "adapter-f32.gguf", dtype="f32")
    largest = _assert_base_plus_lora_is_merged(base_f32, adapter, _merged_gguf(source, tmp_path))
    assert largest > 1e-3  # the adapter moved the weights: the comparison is not of two bases


def test_rslora_and_alpha_pattern_are_folded_into_the_file_exactly(run_dir, base_f32, tmp_path):
    """llama.cpp knows only alpha / r: rsLoRA's alpha / sqrt(r) and per-module alphas still merge right."""
    bare = _edited_adapter(run_dir, tmp_path / "adapter", use_rslora=True, alpha_pattern={"q_proj": 64})
    source = resolve_export_source(bare)
    plan = plan_adapter(source)
    assert plan.alpha == 32 * 4  # 32 / sqrt(16) == 128 / 16
    assert plan.folded == 2 and all(p.factor == 2.0 for p in plan.pairs if p.module.endswith("q_proj"))
    adapter = write_adapter_gguf(source, tmp_path / "adapter-f32.gguf", dtype="f32")
    _assert_base_plus_lora_is_merged(base_f32, adapter, _merged_gguf(source, tmp_path))
    assert check_adapter_gguf(source, adapter).passed


@pytest.mark.parametrize("rslora", [False, True])
def test_a_rank_pattern_merges_right_with_the_rank_read_per_tensor(run_dir, base_f32, tmp_path, rslora):
    """q_proj at rank 8 in a rank-16 adapter: llama.cpp's alpha / r uses each tensor's own r."""
    from safetensors.torch import load_file, save_file

    adapter = _edited_adapter(run_dir, tmp_path / "adapter", use_rslora=rslora, rank_pattern={"q_proj": 8})
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    for key in [k for k in weights if ".q_proj." in k]:
        weights[key] = (weights[key][:8] if ".lora_A." in key else weights[key][:, :8]).contiguous()
    save_file(weights, str(adapter / "adapter_model.safetensors"))
    source = resolve_export_source(adapter)
    plan = plan_adapter(source)
    assert plan.folded == (2 if rslora else 0)  # alpha / sqrt(8) is not (alpha * sqrt(16)) / 8
    out = write_adapter_gguf(source, tmp_path / "adapter-f32.gguf", dtype="f32")
    assert _tensors(out)["blk.0.attn_q.weight.lora_a"].shape[0] == 8
    _assert_base_plus_lora_is_merged(base_f32, out, _merged_gguf(source, tmp_path))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"bias": "all"}, "trained biases"),
    ],
)
def test_adapters_a_gguf_adapter_cannot_express_are_refused(run_dir, tmp_path, change, words):
    source = resolve_export_source(_edited_adapter(run_dir, tmp_path / "adapter", **change))
    with pytest.raises(ModelError) as info:
        write_adapter_gguf(source, tmp_path / "x.gguf")
    assert words in str(info.value) and "\n" not in str(info.value) and "--gguf" in info.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_trained_embeddings_in_the_weights_are_refused(run_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    adapter = _edited_adapter(run_dir, tmp_path / "adapter")
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    weights["base_model.model.model.embed_tokens.weight"] = weights[next(iter(weights))].clone()
    save_file(weights, str(adapter / "adapter_model.safetensors"))
    with pytest.raises(ModelError, match="trained embeddings"):
        plan_adapter(resolve_export_source(adapter))


def test_the_check_finds_a_file_of_another_adapter_and_a_wrong_base(run_dir, tmp_path):
    final = resolve_export_source(run_dir)
    early = resolve_export_source(run_dir / "checkpoints" / "checkpoint-4")
    other = write_adapter_gguf(early, tmp_path / "a.gguf")
    report = check_adapter_gguf(final, other)
    assert not report.passed and "differs from the adapter" in report.problems[0]
    assert "FAILED" in report.summary_lines()[-1]
    with pytest.raises(ModelError, match="is an adapter, not a base model"):
        check_base_gguf(plan_adapter(final), other)


def test_cancel_mid_write_leaves_nothing(run_dir, tmp_path):
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled):
        write_adapter_gguf(resolve_export_source(run_dir), tmp_path / "x.gguf", cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_adapter_base_and_modelfile_then_reuses_the_base(run_dir, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    argv = ["export", str(run_dir), "--adapter-gguf", str(first / "facts.gguf"), "--ollama"]
    argv += ["--base-gguf", str(first / "base.gguf"), "--quant", "f16", "--progress-json"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    check = next(line["check"] for line in lines if "check" in line)
    assert check["kind"] == "adapter-gguf" and check["passed"] and check["tensors"] == 28
    assert lines[-1] == {"done": str(first / "facts.gguf"), "card": str(first / "facts.README.md")}
    names = sorted(p.name for p in first.iterdir())
    assert names == ["base.gguf", "facts.Modelfile", "facts.README.md", "facts.gguf"]
    card = (first / "facts.README.md").read_text()
    assert "llama-cli -m base.gguf --lora facts.gguf" in card and "Export check" in card
    assert _fields(first / "base.gguf")["general.type"] == "model"
    modelfile = (first / "facts.Modelfile").read_text()
    assert modelfile.startswith("FROM ./base.gguf\nADAPTER ./facts.gguf\n")
    assert 'TEMPLATE """' in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile

    base_stat = (first / "base.gguf").stat()
    checkpoint = run_dir / "checkpoints" / "checkpoint-4"
    argv = ["export", str(checkpoint), "--adapter-gguf", str(second / "early.gguf"), "--ollama"]
    assert main([*argv, "--base-gguf", str(first / "base.gguf")]) == 0
    assert "Export check (adapter-gguf) passed" in capsys.readouterr().out
    after = (first / "base.gguf").stat()
    assert (after.st_ino, after.st_mtime_ns) == (base_stat.st_ino, base_stat.st_mtime_ns)  # not rewritten
    assert sorted(p.name for p in second.iterdir()) == ["early.Modelfile", "early.README.md", "early.gguf"]
    text = (second / "early.Modelfile").read_text()
    assert text.startswith(f"FROM {first / 'base.gguf'}\nADAPTER ./early.gguf\n")


def test_cli_refusals_are_one_error_line(run_dir, tmp_path, capsys):
    def error_line(argv) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "Traceback" not in err, err
        return lines[0]

    out = str(tmp_path / "a.gguf")
    assert "needs --base-gguf" in error_line(["export", str(run_dir), "--adapter-gguf", out, "--ollama"])
    assert "goes with --adapter-gguf" in error_line(
        ["export", str(run_dir), "--gguf", out, "--base-gguf", str(tmp_path / "b.gguf")]
    )
    dora = _edited_adapter(run_dir, tmp_path / "dora", use_dora=True)
    assert "DoRA" in error_line(["export", str(dora), "--adapter-gguf", out, "--no-check"])
    wrong = tmp_path / "wrong.gguf"
    shutil.copy(write_adapter_gguf(resolve_export_source(run_dir), tmp_path / "x.gguf"), wrong)
    line = error_line(["export", str(run_dir), "--adapter-gguf", out, "--base-gguf", str(wrong), "--ollama"])
    assert "is an adapter" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dora", "wrong.gguf", "x.gguf"]


def test_llama_cpp_applies_the_adapter_like_the_merged_model(run_dir, base_f32, tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp")  # not a dependency; checked where it is installed
    source = resolve_export_source(run_dir)
    adapter = write_adapter_gguf(source, tmp_path / "adapter.gguf", dtype="f32")
    merged = _merged_gguf(source, tmp_path)
    tokens = [1, 5, 9, 14, 20]

    def logits(path: Path, lora: Path | None = None) -> np.ndarray:
        kwargs = {"lora_path": str(lora)} if lora else {}
        model = llama_cpp.Llama(str(path), logits_all=True, verbose=False, n_ctx=64, **kwargs)
        model.eval(tokens)
        return np.asarray(model.scores[: len(tokens)])

    assert np.abs(logits(base_f32, adapter) - logits(merged)).max() < 1e-3
