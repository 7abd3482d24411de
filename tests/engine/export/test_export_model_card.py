"""The model card every export gets: its content from a real run, and the CLI writing or refusing it."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from testkit import tiny_model
from testkit.tiny_model import write_jsonl

from engine.export.card_sources import LICENSE_TEXT_LIMIT, read_base_model
from engine.export.merge import resolve_export_source
from engine.export.model_card import (
    card_path,
    collect_card_info,
    render_model_card,
    write_model_card,
)
from engine.util.units import format_size

FACT_TEXTS = [text for pair in tiny_model.FACTS for text in pair]


@pytest.fixture(scope="module")
def gguf_export(short_run, tmp_path_factory):
    """One real `export RUN --gguf X.gguf --quant q8_0 --ollama --progress-json`: (folder, JSON lines)."""
    from engine.cli.main import main

    out = tmp_path_factory.mktemp("gguf-card")
    argv = ["export", str(short_run), "--gguf", str(out / "X.gguf"), "--quant", "q8_0", "--ollama"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):  # module-scoped: capsys is per test
        assert main([*argv, "--progress-json"]) == 0
    return out, [json.loads(line) for line in buffer.getvalue().splitlines()]


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_cli_gguf_export_writes_x_readme_with_base_settings_data_quant_and_check(
    gguf_export, short_run, tiny_model_dir
):
    out, messages = gguf_export
    card = out / "X.README.md"
    assert messages[-1] == {"done": str(out / "X.gguf"), "card": str(card)}
    assert sorted(p.name for p in out.iterdir()) == ["X.Modelfile", "X.README.md", "X.gguf"]
    check = messages[-2]["check"]
    lines = _lines(card.read_text(encoding="utf-8"))
    front = lines[: lines.index("---", 1) + 1]
    assert front[:4] == [
        "---",
        f"base_model: {tiny_model_dir.name}",
        "library_name: gguf",
        "pipeline_tag: text-generation",
    ]
    assert front[front.index("tags:") :] == [
        "tags:",
        "- whetstone",
        "- gguf",
        "- lora",
        "- qlora",
        "- q8_0",
        "---",
    ]
    gguf_size, modelfile_size = ((out / name).stat().st_size for name in ("X.gguf", "X.Modelfile"))
    expected = [
        "# X",
        "- Export: GGUF file, weights in q8_0",
        f"- Files: `X.gguf` ({format_size(gguf_size)}), `X.Modelfile` ({format_size(modelfile_size)})",
        "llama-cli -m X.gguf -cnv",
        "ollama create x -f X.Modelfile",
        f"- Name: {tiny_model_dir.name}",
        f"- Folder: `{tiny_model_dir.resolve()}`",
        "- Architecture: LlamaForCausalLM, 125K parameters, context 256 tokens",
        "- License: not stated in the base model folder",
        "- Method: QLoRA (LoRA adapters trained on the base loaded in 4 bits: nf4, double quantization)",
        "- LoRA: r 16, alpha 32, dropout 0, target modules all-linear",
        "- Learning rate: 0.003, constant schedule, warm-up 0%, weight decay 0",
        "- Length: 8 steps (training.max_steps)",
        "- Batch: 4 rows per step (batch size 4 × gradient accumulation 1)",
        "- Max length: 64 tokens",
        "- Seed: 42",
        "- Weights: the adapter at step 8 of 8 trained, the run's last step",
        "- Training rows: 12 (`facts.jsonl`, messages format)",
        "- Validation rows: 0",
        "- Row contents are not included in this card.",
        f"Not evaluated — run `whetstone-engine eval --adapter {short_run.resolve()} --probe forgetting`.",
        "- Weight type: q8_0",
        f"- Export check: passed ({len(check['prompts'])} of {len(check['prompts'])} prompts agree with "
        "base + adapter rounded as the file stores it)",
        f"- Answers that changed with the rounding: {check['rounding_changed_answers']} of 4",
        "- Run: `run`, done",
    ]
    for line in expected:
        assert line in lines, line
    tokens = [line for line in lines if line.startswith("- Tokens: ")]
    assert tokens and tokens[0].endswith("of them trained on (the answers)")
    for prompt in check["prompts"]:
        row = next(line for line in lines if line.startswith(f"| {prompt['prompt']} |"))
        assert row.endswith(f"| {'yes' if prompt['same_text'] else 'no'} |")
        assert f"| {prompt['max_abs_logit_diff']:.3g} |" in row
    assert not any(text in line for line in lines for text in FACT_TEXTS)  # no row contents by default


def test_include_examples_adds_the_first_training_rows(short_run, tmp_path):
    source = resolve_export_source(short_run)
    plain = render_model_card(collect_card_info(source, tmp_path / "m.gguf", "gguf", quant="f16"))
    shown = render_model_card(
        collect_card_info(source, tmp_path / "m.gguf", "gguf", quant="f16", include_examples=2)
    )
    assert not any(text in plain for text in FACT_TEXTS)
    question, answer = tiny_model.FACTS[0]
    assert f"```text\n[user]\n{question}\n[assistant]\n{answer}\n```" in shown
    assert tiny_model.FACTS[1][0] in shown and tiny_model.FACTS[2][0] not in shown
    assert "Row contents are not included" not in shown
    assert "The first 2 training rows, as the trainer read them:" in shown
    assert "- Export check: not checked" in plain


@pytest.mark.slow  # a real evaluation of the tiny run (a few seconds)
def test_the_latest_evaluation_scorecard_appears(short_run, tiny_model_dir, tmp_path):
    from engine.eval.evaluation import EvalRequest, Evaluation
    from engine.eval.report import headline, scorecard_text, write_run_report

    run = shutil.copytree(short_run, tmp_path / "run")
    question, answer = tiny_model.FACTS[0]
    facts = write_jsonl(
        tmp_path / "facts.jsonl", [{"prompt": question, "expected": answer.rstrip("."), "scorer": "contains"}]
    )
    request = EvalRequest(
        model=str(tiny_model_dir),
        adapters=[str(run)],
        sets=[str(facts)],
        validation=None,
        max_new_tokens=8,
        cache_dir=tmp_path / "cache",
    )
    report = Evaluation(request).run()
    write_run_report(report, run)
    text = render_model_card(collect_card_info(resolve_export_source(run), tmp_path / "m", "merged"))
    assert "Not evaluated" not in text
    assert f"**{headline(report)}**" in text and headline(report).startswith("facts ")
    assert scorecard_text(report) in text
    labels = ", ".join(m["label"] for m in report["models"])
    assert f"Latest evaluation of the run ({report['created'][:10]}; columns: {labels}):" in text


def _base_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return shutil.copytree(tiny_model_dir, tmp_path / "base")


def test_license_from_a_license_file_is_named_and_embedded(short_run, tiny_model_dir, tmp_path):
    base = _base_copy(tiny_model_dir, tmp_path)
    apache = (
        "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n\nTERMS AND CONDITIONS"
    )
    (base / "LICENSE").write_text(apache)
    source = replace(resolve_export_source(short_run), base_model=base)
    text = render_model_card(collect_card_info(source, tmp_path / "m.gguf", "gguf", quant="q8_0"))
    lines = text.splitlines()
    assert "license: apache-2.0" in lines[: lines.index("---", 1)]
    assert "- License: apache-2.0 (text below, from the base folder's `LICENSE`)" in lines
    assert f"<summary>LICENSE</summary>\n\n```text\n{apache}\n```\n\n</details>" in text


def test_an_unknown_license_file_is_named_by_its_title_and_a_long_one_is_cut(tiny_model_dir, tmp_path):
    base = _base_copy(tiny_model_dir, tmp_path)
    body = "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\n" + "x" * (LICENSE_TEXT_LIMIT + 100)
    (base / "LICENSE.txt").write_text(body)
    info = read_base_model(base)
    assert (info.license_id, info.license_name, info.license_file) == (
        None,
        "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
        "LICENSE.txt",
    )
    assert info.license_truncated and len(info.license_text) == LICENSE_TEXT_LIMIT


def test_license_from_the_base_readme_front_matter(short_run, tiny_model_dir, tmp_path):
    base = _base_copy(tiny_model_dir, tmp_path)
    (base / "README.md").write_text(
        '---\nlicense: "llama3.1"\nlicense_name: llama3.1\ntags:\n- text-generation\n---\n\n# A model\n'
    )
    source = replace(resolve_export_source(short_run), base_model=base)
    text = render_model_card(collect_card_info(source, tmp_path / "m", "merged"))
    assert "\nlicense: llama3.1\n" in text.split("\n---\n", 1)[0]
    assert "- License: llama3.1 (from the base folder's README.md)" in text.splitlines()
    assert "License of the base model" not in text


def test_adapter_gguf_card_says_how_to_apply_it_and_its_check(short_run, tmp_path):
    from engine.export.gguf_adapter import check_adapter_gguf, write_adapter_gguf

    source = resolve_export_source(short_run)
    adapter = write_adapter_gguf(source, tmp_path / "a.gguf")
    report = check_adapter_gguf(source, adapter)
    card = write_model_card(source, adapter, "adapter-gguf", check=report, base_gguf=tmp_path / "base.gguf")
    assert card == tmp_path / "a.README.md"
    lines = card.read_text(encoding="utf-8").splitlines()
    assert "base_model_relation: adapter" in lines and "- lora-adapter" in lines
    assert "llama-cli -m base.gguf --lora a.gguf -cnv" in lines
    assert "- Export: LoRA adapter GGUF (adapter weights only; needs the base model as a GGUF)" in lines
    assert (
        f"- Export check: passed ({report.tensors} LoRA tensors read back, max abs diff "
        f"{report.max_abs_diff:.1e} from the adapter's weights)"
    ) in lines
    assert not any(line.startswith("- Weight type") for line in lines)


def test_write_never_replaces_a_card_next_to_a_gguf(short_run, tmp_path):
    from engine.errors import UserError

    source = resolve_export_source(short_run)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    card_path(gguf, "gguf").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        write_model_card(source, gguf, "gguf", quant="q8_0")
    assert card_path(gguf, "gguf").read_text() == "mine"


def test_cli_refuses_an_existing_card_before_any_work(short_run, tmp_path, capsys):
    from engine.cli.main import main

    (tmp_path / "X.README.md").write_text("mine")
    assert main(["export", str(short_run), "--gguf", str(tmp_path / "X.gguf"), "--quant", "q8_0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "X.README.md already exists" in err
    assert len(err.strip().splitlines()) == 1, err  # refused before the merge: no progress lines
    assert [p.name for p in tmp_path.iterdir()] == ["X.README.md"]
    assert (tmp_path / "X.README.md").read_text() == "mine"


def test_cli_merged_export_writes_dir_readme_and_a_failed_check_says_so(
    short_run, tmp_path, capsys, monkeypatch
):
    import torch

    from engine.cli.main import main
    from engine.export import merge

    out = tmp_path / "DIR"
    assert main(["export", str(short_run), "--merged", str(out), "--no-check"]) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[-2:] == [f"Model card: {out / 'README.md'}", str(out)]
    text = (out / "README.md").read_text(encoding="utf-8")
    assert "library_name: transformers" in text and "- Export check: not checked (--no-check)" in text
    assert 'model = AutoModelForCausalLM.from_pretrained("DIR")' in text
    assert "`model.safetensors`" in text and "`README.md`" not in text

    real = merge.merge_adapter

    def merge_badly(source, out_dir, **kwargs):
        done = real(source, out_dir, **kwargs)
        model = __import__("transformers").AutoModelForCausalLM.from_pretrained(str(done))
        with torch.no_grad():
            model.lm_head.weight.mul_(2.0)
        model.save_pretrained(str(done))
        return done

    monkeypatch.setattr(merge, "merge_adapter", merge_badly)
    bad = tmp_path / "bad"
    assert main(["export", str(short_run), "--merged", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: export check failed: ") and str(bad / "README.md") in err[-1]
    assert (
        "- Export check: FAILED (0 of 4 prompts agree with base + adapter)" in (bad / "README.md").read_text()
    )


def test_settings_and_data_sections_name_the_best_step_skips_truncation_and_replay(short_run):
    from engine.export.card_sections import data_section, settings_section
    from engine.export.card_sources import RunFacts

    config = resolve_export_source(short_run).config
    best = {"step": 4, "eval_loss": 1.23456, "path": "checkpoints/checkpoint-4"}
    settings = settings_section(config, RunFacts(adapter_step=4, steps=8), best).splitlines()
    assert (
        "- Weights: the adapter at step 4 of 8 trained, the best checkpoint (lowest validation loss, 1.2346)"
        in (settings)
    )
    data = {
        "format": "alpaca",
        "train_rows": 90,
        "validation_rows": 10,
        "validation": {"rows": 10, "source": "auto"},
        "skipped": {"duplicate": 2, "no_trainable_tokens": 1},
        "truncated_rows": 3,
        "truncated_tokens": 40,
        "tokens": 5000,
        "trained_tokens": 1200,
    }
    lines = data_section(config, data, 12, False).splitlines()
    for line in (
        "- Training rows: 90 (`facts.jsonl`, alpaca format)",
        "- Validation rows: 10 (10% of the training file held out, chosen automatically)",
        "- Tokens: 5000 in the training and validation rows, 1200 of them trained on (the answers)",
        "- Skipped rows: 3 (2 duplicate, 1 no trainable tokens)",
        "- Truncated rows: 3 (longer than the max length; 40 tokens cut)",
        "- Replay: 12 of the base model's own answers mixed in against forgetting",
    ):
        assert line in lines, line
