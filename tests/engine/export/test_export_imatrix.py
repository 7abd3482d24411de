"""The importance matrix (engine.export.imatrix): what llama-imatrix collects, from the run's own rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from testkit.engine_helpers import tiny_config
from testkit.tiny_model import fact_rows, write_jsonl

from engine.data.prepare import prepare_data
from engine.errors import ConfigError
from engine.export import imatrix
from engine.export.merge import ExportSource
from engine.models.folder import read_safetensors_header, weight_files
from engine.models.loading import load_tokenizer


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()


def _source(model_dir: Path, data: Path, **overrides) -> ExportSource:
    config = tiny_config(model_dir, data, **overrides)
    return ExportSource(model_dir, model_dir / "adapter", None, config)


@pytest.fixture(scope="module")
def source(tiny_model_dir, tmp_path_factory):
    data = write_jsonl(tmp_path_factory.mktemp("imatrix-data") / "facts.jsonl", fact_rows(repeat=4))
    return _source(tiny_model_dir, data, data__validation_ratio=0.25)


def _columns(model_dir: Path) -> dict[str, int]:
    return {
        name: entry["shape"][1]
        for file in weight_files(model_dir)
        for name, entry in read_safetensors_header(file).items()
        if name != "__metadata__" and len(entry["shape"]) == 2
    }


def _by_hand(model, sequences) -> dict[str, np.ndarray]:
    """mean(x^2) of every linear layer's input, from each sequence run alone through the full model."""
    captured: dict[str, list[np.ndarray]] = {}
    hooks = [
        module.register_forward_pre_hook(
            lambda _m, args, key=f"{name}.weight": captured.setdefault(key, []).append(
                args[0][0].double().numpy()
            )
        )
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    ]
    try:
        with torch.no_grad():
            for seq in sequences:
                model(input_ids=torch.tensor([seq]))
    finally:
        for hook in hooks:
            hook.remove()
    return {key: np.mean(np.concatenate(xs) ** 2, axis=0) for key, xs in captured.items()}


def test_rows_are_the_runs_own_rendered_rows_validation_first_within_the_budgets(source):
    prepared = prepare_data(load_tokenizer(source.model_config()), source.config.data)
    assert len(prepared.validation) == 3 and len(prepared.train) == 9
    expected = [row["input_ids"] for row in prepared.validation + prepared.train]
    assert imatrix.imatrix_rows(source, rows=100) == expected
    assert imatrix.imatrix_rows(source, rows=4) == expected[:4]
    budget = len(expected[0]) + 5  # the second row is cut to the token budget, the rest left out
    assert imatrix.imatrix_rows(source, rows=100, max_tokens=budget) == [expected[0], expected[1][:5]]


def test_the_matrix_is_the_mean_square_input_of_every_linear_weight_without_padding(
    model, source, tiny_model_dir
):
    sequences = imatrix.imatrix_rows(source, rows=6)
    assert len({len(s) for s in sequences}) > 1  # the batch below really is padded
    matrix, tokens = imatrix.accumulate(model, sequences, pad_id=7)  # one padded batch
    assert tokens == sum(len(s) for s in sequences)

    columns = _columns(tiny_model_dir)  # every 2-D weight but the embedding lookup, untied lm_head in
    assert set(matrix) == set(columns) - {"model.embed_tokens.weight"}
    assert "lm_head.weight" in matrix and len(matrix) == 2 * 7 + 1
    for key, value in matrix.items():
        assert value.dtype == np.float32 and value.shape == (columns[key],)
    hand = _by_hand(model, sequences)
    for key, value in matrix.items():
        np.testing.assert_allclose(value, hand[key], rtol=1e-4, atol=1e-7, err_msg=key)
    singles, _ = imatrix.accumulate(model, sequences, batch_tokens=1)  # one row per pass, no padding
    for key, value in matrix.items():
        np.testing.assert_allclose(value, singles[key], rtol=1e-4, atol=1e-7, err_msg=key)


def _tiny_llama(tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tied,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def test_a_tied_lm_head_is_the_embedding_lookup_and_gets_no_entry():
    tied = _tiny_llama(tied=True)
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    matrix, _ = imatrix.accumulate(tied, [[1, 2, 3, 4]])
    assert "lm_head.weight" not in matrix and len(matrix) == 7


def test_non_finite_activations_stop_the_collection_with_a_hint():
    from engine.errors import ModelError

    broken = _tiny_llama(tied=False)
    with torch.no_grad():
        broken.model.layers[0].mlp.up_proj.weight[0, 0] = float("inf")
    with pytest.raises(ModelError, match="non-finite activations at model.layers.0.mlp.down_proj") as info:
        imatrix.accumulate(broken, [[1, 2, 3, 4]])
    assert "without --imatrix" in info.value.one_line()


def test_collect_loads_the_folder_and_reports_progress(source, tiny_model_dir, model):
    sequences = imatrix.imatrix_rows(source, rows=3)
    messages: list[tuple[float, str]] = []
    matrix = imatrix.collect_imatrix(tiny_model_dir, sequences, progress=lambda f, m: messages.append((f, m)))
    expected, _ = imatrix.accumulate(model, sequences)
    assert all(np.allclose(matrix[key], expected[key], rtol=1e-5) for key in expected)
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "3 rows" in messages[-1][1]


def test_a_cancel_stops_between_batches(model):
    from engine.errors import Cancelled

    with pytest.raises(Cancelled):
        imatrix.accumulate(model, [[1, 2, 3]] * 4, batch_tokens=3, cancel=lambda: True)


def test_without_the_runs_data_the_error_says_to_export_without_imatrix(tiny_model_dir, tmp_path):
    gone = _source(tiny_model_dir, tmp_path / "moved.jsonl")
    with pytest.raises(ConfigError) as info:
        imatrix.imatrix_rows(gone)
    line = info.value.one_line()
    assert "needs the run's data" in line and "moved.jsonl" in line and "without --imatrix" in line
    bare = ExportSource(tiny_model_dir, tmp_path / "adapter", None, None)  # an adapter with no run
    with pytest.raises(ConfigError, match="has no run around it") as info:
        imatrix.imatrix_rows(bare)
    assert "without --imatrix" in info.value.one_line()


def test_a_saved_matrix_reads_back_and_must_fit_the_model(model, source, tiny_model_dir, tmp_path):
    matrix, tokens = imatrix.accumulate(model, imatrix.imatrix_rows(source, rows=2))
    path = imatrix.save_imatrix(tmp_path / "run.imatrix.npz", matrix, tokens=tokens)
    loaded = imatrix.load_imatrix(path, tiny_model_dir)
    assert set(loaded) == set(matrix) and all(np.array_equal(loaded[k], matrix[k]) for k in matrix)

    key = "model.layers.0.mlp.down_proj.weight"
    imatrix.save_imatrix(tmp_path / "other.npz", {**matrix, key: np.ones(3, np.float32)})
    with pytest.raises(ConfigError, match="does not fit this model: model.layers.0.mlp.down_proj"):
        imatrix.load_imatrix(tmp_path / "other.npz", tiny_model_dir)
    np.savez(tmp_path / "plain.npz", x=np.ones(3))
    (tmp_path / "text.npz").write_text("not a zip")
    for bad in ("plain.npz", "text.npz", "missing.npz"):
        with pytest.raises(ConfigError, match="importance matrix"):
            imatrix.load_imatrix(tmp_path / bad)


# ---- the CLI: `export --gguf OUT --imatrix`


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--merged", "out"], "error: --imatrix needs --gguf"),
        (["--gguf", "x.gguf", "--quant", "q8_0"], "error: An importance matrix changes nothing in a q8_0"),
        (["--gguf", "x.gguf", "--imatrix-file", "m.npz"], "error: argument --imatrix-file: not allowed"),
    ],
)
def test_cli_refuses_an_imatrix_it_cannot_use_in_one_line(flags, expected, tmp_path, capsys, monkeypatch):
    from engine.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["export", str(tmp_path), "--imatrix", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err
    assert (
        main(["export", str(tmp_path), "--gguf", "x.gguf", "--quant", "q4_k_m", "--imatrix-rows", "5"]) == 2
    )
    assert capsys.readouterr().err.startswith("error: --imatrix-rows needs --imatrix.")
    assert list(tmp_path.iterdir()) == []


def test_cli_collects_on_the_merged_model_and_rounds_the_file_and_the_check_alike(
    short_run, tmp_path, capsys, monkeypatch
):
    import json

    from engine.cli.main import main
    from engine.export import gguf_write

    real, seen = gguf_write.write_gguf, {}

    def spy(model_dir, out, quant, **kwargs):
        seen["matrix"], seen["columns"] = kwargs["imatrix"], _columns(Path(model_dir))
        return real(model_dir, out, quant, **kwargs)

    monkeypatch.setattr(gguf_write, "write_gguf", spy)
    out = tmp_path / "model.gguf"
    args = ["export", str(short_run), "--gguf", str(out), "--quant", "q4_k_m", "--imatrix"]
    assert main([*args, "--imatrix-rows", "5", "--progress-json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any("Importance matrix from 5 rows" in line.get("message", "") for line in lines)
    fractions = [line["progress"] for line in lines if "progress" in line]
    assert fractions == sorted(fractions)
    matrix, columns = seen["matrix"], seen["columns"]
    assert set(matrix) == set(columns) - {"model.embed_tokens.weight"}
    assert all(matrix[k].shape == (columns[k],) and (matrix[k] > 0).all() for k in matrix)
    # The check's reference is rounded with the same matrix: the writer agrees with it exactly.
    check = next(line["check"] for line in lines if "check" in line)
    assert check["passed"] and all(p["writer_max_abs_logit_diff"] < 0.05 for p in check["prompts"]), check
    assert out.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # merge-tmp gone


def test_cli_with_the_runs_data_gone_fails_before_the_merge(short_run, tmp_path, capsys):
    import shutil

    from engine.cli.main import main
    from engine.config import load_config

    run = shutil.copytree(short_run, tmp_path / "run")
    data = load_config(run / "config.toml").data.path
    config = (run / "config.toml").read_text(encoding="utf-8")
    (run / "config.toml").write_text(config.replace(data, str(tmp_path / "moved.jsonl")), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    args = ["export", str(run), "--gguf", str(out / "m.gguf"), "--quant", "q4_k_m", "--imatrix", "--no-check"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the run's data" in err[0] and "without --imatrix" in err[0], err
    assert list(out.iterdir()) == []
