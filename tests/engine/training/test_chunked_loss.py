"""Chunked cross-entropy: transformers' loss and gradients, without the whole batch's logits."""

from __future__ import annotations

import pytest
from testkit.engine_helpers import losses, tiny_config

from engine.config import RunConfig, config_to_toml, field_errors
from engine.data.prepare import PadCollator, PaddingFreeCollator
from engine.errors import ConfigError
from engine.models import memory_estimate as me
from engine.training import chunked_loss as cl

BIG_VOCAB = 50_000


def _rows():
    """Three rows of different lengths; each prompt (the first tokens) is not trained."""
    import torch

    generator = torch.Generator().manual_seed(1)
    rows = []
    for length, prompt in ((9, 3), (23, 8), (15, 15)):  # the last trains nothing but its end
        ids = torch.randint(3, 400, (length,), generator=generator).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return rows


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    """The tiny model in fp32 with LoRA on attention and on the output head (B not zero)."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.config import LoraConfig
    from engine.training.lora import add_lora

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    lora = LoraConfig(dropout=0.0, target_modules=["q_proj", "v_proj", "lm_head"])
    model = add_lora(base, lora, True, 0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # zero at init: A's gradients would be zero both ways
                param.normal_(0, 0.05)
    return model.train()


def _loss_and_grads(model, compute):
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "padding-free"])
def test_loss_and_lora_gradients_match_transformers(lora_model, monkeypatch, packed):
    monkeypatch.setattr(cl, "chunk_tokens", lambda vocab: 5)  # several chunks and a short last one
    batch = (PaddingFreeCollator() if packed else PadCollator(2))(_rows())
    assert cl.split_reason(lora_model, batch) == ""
    expected, expected_grads = _loss_and_grads(lora_model, lambda: lora_model(**batch).loss)
    got, grads = _loss_and_grads(lora_model, lambda: cl.chunked_loss(lora_model, batch))
    assert got == pytest.approx(expected, rel=1e-5)
    assert any("lm_head.lora_A" in name for name in grads) and len(grads) == len(expected_grads)
    for name, grad in expected_grads.items():
        scale = grad.abs().max()
        assert scale > 0, name
        assert (grads[name] - grad).abs().max() <= 1e-5 * scale, name  # fp32 rounding only


def test_num_items_in_batch_divides_the_sum_as_transformers_does(lora_model):
    import torch

    batch = PadCollator(2)(_rows())
    count = torch.tensor(50)  # gradient accumulation: trained tokens over every micro-batch of the step
    with torch.no_grad():
        expected = lora_model(**batch, num_items_in_batch=count).loss.item()
        got = cl.chunked_loss(lora_model, batch, count).item()  # no_grad: the chunks without gradients
    assert got == pytest.approx(expected, rel=1e-5)


def test_a_batch_with_nothing_to_train_gives_zero_gradients_not_none(lora_model):
    import torch

    batch = PadCollator(2)(_rows())
    batch["labels"][:] = -100
    loss = cl.chunked_loss(lora_model, batch, torch.tensor(7))
    loss.backward()
    assert loss.item() == 0.0
    for name, param in lora_model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().max() == 0, name
    lora_model.zero_grad(set_to_none=True)


def test_models_whose_logits_are_not_the_head_keep_the_whole_loss(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    batch = PadCollator(2)(_rows())
    capped = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    capped.config.final_logit_softcapping = 30.0
    assert "final_logit_softcapping" in cl.split_reason(capped, batch)

    scaled = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)

    def times_two(module, args, output):  # a logit scale that no config key names
        output.logits = output.logits * 2
        return output

    scaled.register_forward_hook(times_two)
    assert "not exactly the head" in cl.split_reason(scaled, batch)
    with torch.no_grad():  # model_loss falls back to the model's own loss
        assert cl.model_loss(scaled, batch).item() == pytest.approx(scaled(**batch).loss.item())


def test_training_with_gradient_accumulation_logs_the_same_losses(
    tiny_model_dir, facts_file, tmp_path, monkeypatch
):
    from engine.training.recipe import train

    calls = []
    real = cl.chunked_loss
    monkeypatch.setattr(cl, "chunked_loss", lambda *a, **k: calls.append(1) or real(*a, **k))
    runs = {}
    for setting in (False, "auto"):
        config = tiny_config(
            tiny_model_dir,
            facts_file,
            training__max_steps=3,
            training__batch_size=2,
            training__gradient_accumulation=3,
            training__chunked_loss=setting,
            data__validation_ratio=0.0,
        )
        runs[setting] = tmp_path / str(setting)
        assert train(config, runs[setting]).state == "done"
        assert bool(calls) == (setting == "auto")  # the Trainer took the chunked path (or not)
    plain, chunked = losses(runs[False]), losses(runs["auto"])
    assert sorted(chunked) == [1, 2, 3]
    assert chunked == pytest.approx(plain, rel=1e-4)


def test_a_run_says_once_why_its_loss_stays_whole(tiny_model_dir, facts_file, tmp_path):
    import json
    import shutil

    from engine.runs.events import read_events
    from engine.training.recipe import train

    folder = tmp_path / "capped"
    shutil.copytree(tiny_model_dir, folder)
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(raw, final_logit_softcapping=30.0)))
    config = tiny_config(
        folder, facts_file, training__max_steps=2, training__chunked_loss=True, data__validation_ratio=0.0
    )
    assert train(config, tmp_path / "run").state == "done"
    said = [
        e for e in read_events(tmp_path / "run" / "events.jsonl") if "chunked_loss" in e.get("message", "")
    ]
    assert len(said) == 1 and said[0]["type"] == "warning"  # true asked for it: a warning, once
    assert "final_logit_softcapping" in said[0]["message"]


def _peak_bytes(compute) -> tuple[int, int]:
    """(allocator peak, peak of tensors saved for backward) over one forward and backward."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    live = [0, 0]

    class Saved:
        def __init__(self, tensor) -> None:
            self.tensor, self.bytes = tensor, tensor.numel() * tensor.element_size()
            live[0] += self.bytes
            live[1] = max(live)

        def __del__(self) -> None:
            live[0] -= self.bytes

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with torch.autograd.graph.saved_tensors_hooks(Saved, lambda packed: packed.tensor):
            loss = compute()
        loss.backward()
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak, live[1]


def _big_vocab_model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=BIG_VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def test_a_long_batch_never_holds_its_whole_logits():
    import torch

    model = _big_vocab_model().train()
    length = 1024
    ids = torch.randint(0, BIG_VOCAB, (1, length))
    labels = ids.clone()
    labels[:, :100] = -100
    batch = {"input_ids": ids, "labels": labels}
    whole = length * BIG_VOCAB * 4  # B × T × V fp32 logits
    plain_peak, plain_saved = _peak_bytes(lambda: model(**batch).loss)
    peak, saved = _peak_bytes(lambda: cl.chunked_loss(model, batch))
    assert plain_saved > whole and plain_peak > 2 * whole
    assert saved < 0.1 * whole and peak < 0.5 * whole, (peak / whole, saved / whole)


def test_the_setting_is_checked_and_written():
    assert RunConfig().training.chunked_loss == "auto"
    assert 'chunked_loss = "auto"' in config_to_toml(RunConfig())
    for value in (True, False, "auto"):
        assert RunConfig().with_overrides({"training.chunked_loss": value}).training.chunked_loss is value
    with pytest.raises(ConfigError) as caught:
        RunConfig().with_overrides({"training.chunked_loss": "yes"})
    assert caught.value.message == "training.chunked_loss = 'yes' is not allowed: \"auto\", true or false."
    assert "training.chunked_loss" in field_errors({"training": {"chunked_loss": 1}})


def test_estimate_drops_by_the_logits_term(tmp_path):
    model_dir = tmp_path / "big-vocab"
    _big_vocab_model().save_pretrained(str(model_dir))
    config = tiny_config(model_dir, tmp_path / "unused.jsonl", training__batch_size=4, data__max_length=512)
    tokens, shapes = 4 * 512, me.read_shapes(model_dir)
    for device, per_logit, per_chunked in (("cuda", 14, 12), ("cpu", 16, 8)):
        whole = me.estimate_training_memory(
            model_dir, config.with_overrides({"training.chunked_loss": False}), device
        )
        chunked = me.estimate_training_memory(model_dir, config, device)
        assert whole.part(me.LOGITS).bytes == tokens * BIG_VOCAB * per_logit
        chunk = me.chunk_tokens(BIG_VOCAB)
        hidden_grads = 2 * tokens * shapes.hidden * 4
        assert chunked.part(me.LOGITS).bytes == chunk * BIG_VOCAB * per_chunked + hidden_grads
        assert chunked.part(me.LOGITS).bytes < whole.part(me.LOGITS).bytes / 10
        saved = whole.total_bytes - chunked.total_bytes
        assert saved >= 0.9 * (whole.part(me.LOGITS).bytes - chunked.part(me.LOGITS).bytes)
        tips = me.suggestions(whole, config.with_overrides({"training.chunked_loss": False}), 2**20)
        assert any(tip.startswith('training.chunked_loss "auto" saves') for tip in tips)


def test_estimate_keeps_the_whole_logits_for_soft_capped_models(tmp_path):
    import json

    model_dir = tmp_path / "capped"
    _big_vocab_model().save_pretrained(str(model_dir))
    raw = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps(dict(raw, final_logit_softcapping=30.0)))
    config = tiny_config(model_dir, tmp_path / "unused.jsonl", training__batch_size=4, data__max_length=512)
    part = me.estimate_training_memory(model_dir, config, "cpu").part(me.LOGITS)
    assert part.bytes == 4 * 512 * BIG_VOCAB * 16 and "final_logit_softcapping" in part.detail
