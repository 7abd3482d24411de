"""Preference tuning (DPO, ORPO, KTO) on the tiny model's 4-bit path, judged by plain transformers + peft."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
import torch
from testkit import tiny_model
from testkit.engine_helpers import engine_cmd, expect_bad_input, losses, states, tiny_config, wait_for

from engine.cli.main import main
from engine.runs import checkpoints
from engine.runs.events import read_events
from engine.training.recipe import TrainingRecipe, train

WRONG = {"Quillhaven.": "Marrowby.", "Mira Sol.": "Tom Reed.", "Bright green.": "Dull grey."}
HELD_OUT_WRONG = {"Quillhaven.": "Pellworth.", "Mira Sol.": "Ada Brook.", "Bright green.": "Pale blue."}


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def pairs_file(tmp_path):
    rows = [{"prompt": q, "chosen": a, "rejected": WRONG[a]} for q, a in tiny_model.FACTS] * 6
    return write_rows(tmp_path / "pairs.jsonl", rows)


def logps(model_dir, adapter=None) -> list[tuple[float, float]]:
    """(log p(answer), log p(held-out wrong answer)) per fact, by transformers + peft alone (no Whetstone)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()

    def logp(question, answer):
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(prompt + answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        targets = torch.tensor(ids[1:])
        per_token = logits.gather(1, targets[:, None])[:, 0]
        return per_token[len(prompt_ids) - 1 :].sum().item()

    return [(logp(q, a), logp(q, HELD_OUT_WRONG[a])) for q, a in tiny_model.FACTS]


def margins(model_dir, adapter=None) -> list[float]:
    """log p(chosen) - log p(rejected) on held-out pairs."""
    return [good - bad for good, bad in logps(model_dir, adapter)]


@pytest.mark.slow  # a real DPO run and three margin measurements
def test_dpo_raises_the_margin_of_chosen_over_rejected_on_held_out_pairs(
    tiny_model_dir, pairs_file, tmp_path
):
    config = tiny_config(
        tiny_model_dir,
        pairs_file,
        training__method="dpo",
        training__max_steps=12,
        training__batch_size=2,
        training__learning_rate=2e-3,
        training__preference_beta=0.5,
    )
    run = tmp_path / "dpo"
    result = train(config, run)
    assert result.state == "done"
    before = margins(tiny_model_dir)
    after = margins(tiny_model_dir, run / "adapter")
    # The rejected answers held out here were never seen: the model learned the facts, not the wrong words.
    assert sum(after) > sum(before) + 1.0, (before, after)
    events = read_events(run / "events.jsonl")
    metrics = [e for e in events if e["type"] == "metrics"]
    assert {"reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy"} <= set(metrics[-1])
    assert metrics[-1]["reward_margin"] > 0 and metrics[-1]["reward_accuracy"] > 0.5
    assert next(e for e in events if e["type"] == "model")["method"] == "dpo"
    assert not (run / "adapter" / "ref").exists()  # TRL's frozen reference copy is not the run's adapter


@pytest.mark.slow  # two short real runs
@pytest.mark.parametrize("method, fields", [("orpo", {"nll_loss", "log_odds_ratio"}), ("kto", {"kl"})])
def test_orpo_and_kto_complete_and_their_metrics_reach_the_events(
    tiny_model_dir, pairs_file, tmp_path, method, fields
):
    config = tiny_config(
        tiny_model_dir, pairs_file, training__method=method, training__max_steps=3, training__batch_size=2
    )
    assert train(config, tmp_path / method).state == "done"
    metrics = [e for e in read_events(tmp_path / method / "events.jsonl") if e["type"] == "metrics"]
    seen = set().union(*metrics)
    assert {"reward_chosen", "reward_rejected", "reward_margin"} <= seen
    assert fields <= seen
    assert metrics[-1]["tokens_per_second"] > 0  # counted for ORPO too, whose batches have no input_ids
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / method / "adapter"
    )


def test_kto_takes_rated_replies_and_refuses_a_batch_of_one(tiny_model_dir, tmp_path):
    rows = [{"prompt": q, "completion": a, "label": True} for q, a in tiny_model.FACTS]
    rows += [{"prompt": q, "completion": WRONG[a], "label": False} for q, a in tiny_model.FACTS]
    data = write_rows(tmp_path / "rated.jsonl", rows)
    config = tiny_config(tiny_model_dir, data, training__method="kto", training__batch_size=1)
    with pytest.raises(Exception, match="batch_size of at least 2"):
        train(config, tmp_path / "kto")


def test_init_adapter_starts_from_the_sft_adapters_weights(tiny_model_dir, short_run, pairs_file, tmp_path):
    from safetensors.torch import load_file

    config = tiny_config(
        tiny_model_dir, pairs_file, training__method="dpo", training__init_adapter=str(short_run)
    )
    recipe = TrainingRecipe(config, tmp_path / "dpo")
    recipe.check_inputs()
    recipe.open_run_folder()
    try:
        recipe.setup_data()
        recipe.setup_model()
    finally:
        recipe.log.close()
    saved = load_file(short_run / "adapter" / "adapter_model.safetensors")
    state = {k: v for k, v in recipe.model.state_dict().items() if "lora_" in k and ".default." in k}
    assert len(state) == len(saved) > 0
    for name, tensor in saved.items():
        ours = name.replace(".weight", ".default.weight")
        assert torch.equal(state[ours].float().cpu(), tensor.float()), name
    assert all(p.requires_grad for n, p in recipe.model.named_parameters() if "lora_" in n)


def test_a_method_that_does_not_fit_the_data_is_one_line(
    tiny_model_dir, facts_file, pairs_file, tmp_path, capsys
):
    base = ["train", "--model", str(tiny_model_dir), "--output", str(tmp_path / "r")]
    expect_bad_input(
        capsys, [*base, "--data", str(facts_file), "--method", "dpo"], "preference pairs", "messages"
    )
    expect_bad_input(capsys, [*base, "--data", str(pairs_file)], "training.method = sft", "--method dpo")
    expect_bad_input(capsys, [*base, "--data", str(pairs_file), "--method", "ppo"], "training.method")
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # a real engine process, killed, then resumed
def test_a_killed_dpo_run_resumes_from_its_last_complete_checkpoint(tiny_model_dir, pairs_file, tmp_path):
    run = tmp_path / "run"
    args = [
        "--model",
        str(tiny_model_dir),
        "--data",
        str(pairs_file),
        "--output",
        str(run),
        "--method",
        "dpo",
    ]
    proc = subprocess.Popen(
        engine_cmd("train", *args, "--max-steps", "100000", "--batch-size", "2", "--save-every", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: checkpoints.latest_complete(run) is not None and max(losses(run)) >= 5, what="steps")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    latest = checkpoints.latest_complete(run)
    resumed_from = int(latest.name.split("-")[1])
    end = resumed_from + 2
    assert main(["train", "--output", str(run), "--resume", "--max-steps", str(end), "--quiet"]) == 0
    assert states(run)[-1] == "done"
    metrics = [e for e in read_events(run / "events.jsonl") if e["type"] == "metrics"]
    assert [e["step"] for e in metrics[-2:]] == [resumed_from + 1, end]
    assert "reward_margin" in metrics[-1]
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow  # a real prompt-tuning run
def test_prompt_tuning_trains_and_its_adapter_loads_in_plain_peft(
    tiny_model_dir, facts_file, tmp_path, capsys
):
    config = tiny_config(
        tiny_model_dir,
        facts_file,
        training__method="prompt_tuning",
        training__prompt_tuning_tokens=8,
        training__max_steps=6,
        training__learning_rate=3e-2,
    )
    assert train(config, tmp_path / "pt").state == "done"
    steps = losses(tmp_path / "pt")
    assert steps[6] < steps[1]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "pt" / "adapter"
    )
    assert model.peft_config["default"].num_virtual_tokens == 8
    # Chat takes it; export and evaluation (which need LoRA weights) say so in one line.
    run = str(tmp_path / "pt")
    assert (
        main(
            [
                "generate",
                "--model",
                str(tiny_model_dir),
                "--adapter",
                run,
                "--prompt",
                "Hi",
                "--max-new-tokens",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    expect_bad_input(capsys, ["export", run, "--merged", str(tmp_path / "m")], "prompt-tuning", "export")
    expect_bad_input(capsys, ["eval", "--adapter", run, "--no-validation"], "prompt-tuning", "evaluation")
    assert not (tmp_path / "m").exists()


def test_the_fit_check_measures_a_dpo_step_on_both_answers_of_the_longest_pairs(tiny_model_dir, pairs_file):
    from transformers import AutoTokenizer

    from engine.data.preference import tokenize_preference
    from engine.data.reading import read_data
    from engine.training.fit_check import fit_check

    config = tiny_config(tiny_model_dir, pairs_file, training__method="dpo", training__batch_size=2)
    report = fit_check(config, steps=2)
    assert report.fits and report.tokens_per_second > 0
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = [tokenize_preference(tokenizer, row, 64).example for row in read_data(pairs_file).rows]
    longest_side = max(
        len(e["prompt_ids"]) + len(e[k]) for e in examples for k in ("chosen_ids", "rejected_ids")
    )
    assert report.sequence_length == longest_side  # padded to the longest answer, not to a pair's total


def test_dpo_on_an_sft_adapter_measures_rewards_against_that_adapter_not_the_base(
    tiny_model_dir, short_run, pairs_file, tmp_path
):
    common = dict(training__method="dpo", training__max_steps=1, training__batch_size=2)
    config = tiny_config(tiny_model_dir, pairs_file, training__init_adapter=str(short_run), **common)
    assert train(config, tmp_path / "on-sft").state == "done"
    first = next(e for e in read_events(tmp_path / "on-sft" / "events.jsonl") if e["type"] == "metrics")
    # Step 1 is computed before any update: the policy is the sft adapter, and so is the reference,
    # so its rewards are zero up to rounding. Against the base they would be beta × what sft gained.
    gained = [
        sft[0] - base[0]
        for sft, base in zip(logps(tiny_model_dir, short_run / "adapter"), logps(tiny_model_dir), strict=True)
    ]
    against_base = 0.1 * sum(gained) / len(gained)
    assert against_base > 0.1
    assert abs(first["reward_chosen"]) < against_base / 20, (first["reward_chosen"], against_base)
