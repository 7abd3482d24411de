"""Causal-LM cross-entropy over the output head in chunks of tokens: a batch's logits never exist whole.

transformers computes logits for every position (batch × length × vocab, in fp32 for the loss) and
keeps them and their gradient for the backward pass: for a 50k vocabulary that is most of a small
model's training memory. Here a forward pre-hook takes the head's input (the final hidden states)
and hands the head an empty slice, so the model itself computes no logits. The loss is then taken
over the positions that are trained (label != -100) only, a chunk of tokens at a time, and each
chunk's gradients are computed right away, in the forward pass (the idea of Liger's fused linear
cross-entropy): only the hidden states' gradient (tokens × hidden) waits for the backward pass,
which just scales it. No logits are recomputed, and prompt tokens cost no head compute at all.

The split is exact only where logits = head(hidden), so models that change the logits after the
head (soft-capping, a logit scale) or are not plain causal LMs keep transformers' own loss.
"""

from __future__ import annotations

import contextlib
from typing import Any

from engine.models.memory_estimate import SCALED_LOGITS_KEYS, chunk_tokens

IGNORE_INDEX = -100


def _unwrap(model):
    """The transformers model under a DDP/accelerate wrapper and a peft wrapper."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def split_problem(model) -> str | None:
    """Why the loss of `model` (maybe peft-wrapped) cannot be split from its head; None when it can."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    inner = _unwrap(model)
    config = getattr(inner, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return "the model is not a decoder-only causal language model"
    if getattr(inner, "loss_function", None) is not ForCausalLMLoss:
        return "the model computes its own kind of loss"
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if head is None:
        return "the model has no separate output head (lm_head)"
    texts = [config, getattr(config, "get_text_config", lambda: config)()]
    for key in SCALED_LOGITS_KEYS:
        for cfg in texts:
            if getattr(cfg, key, None) not in (None, 0, 1, 1.0, False):
                return f"the model changes its logits after the head ({key})"
    for attribute in ("logit_scale", "logits_scaling"):
        if hasattr(inner, attribute):
            return f"the model changes its logits after the head ({attribute})"
    return None


class HiddenCapture:
    """While active, the head's input is kept in `.hidden` and the head computes logits for no position."""

    def __init__(self, head) -> None:
        self.head = head
        self.hidden = None
        self.calls = 0

    def _hook(self, module, args):
        self.calls += 1
        if len(args) != 1:
            return None  # not the single-tensor call we know: computes logits; `calls` still counts it
        self.hidden = args[0]
        return (args[0][..., :0, :],)

    def __enter__(self) -> HiddenCapture:
        self._handle = self.head.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def result(self, rows: int, length: int):
        """The captured (rows, length, hidden) states; ValueError unless the head ran once on them."""
        hidden = self.hidden
        if self.calls != 1 or hidden is None or tuple(hidden.shape[:2]) != (rows, length):
            raise ValueError("the model does not call its output head once on all positions")
        return hidden


def _chunk_loss(head, hidden, labels, wrt=()):
    """Summed cross-entropy of head(hidden) over one chunk, and its gradients with respect to `wrt`.

    The gradient of the loss in the logits is softmax - one-hot, written over a float copy of
    the logits in place: one chunk-sized buffer, where autograd's log-softmax would keep three.
    """
    import torch

    with torch.enable_grad() if wrt else contextlib.nullcontext():
        logits = head(hidden)
    x = logits.detach().float()  # the loss in fp32, as transformers' own (a copy only for 16-bit logits)
    lse = torch.logsumexp(x, dim=-1)
    loss = (lse - x.gather(1, labels.unsqueeze(1)).squeeze(1)).sum()
    if not wrt:
        return loss, []
    x.sub_(lse.unsqueeze(1)).exp_()
    x[torch.arange(labels.shape[0], device=x.device), labels] -= 1
    return loss, list(torch.autograd.grad(logits, list(wrt), x.to(logits.dtype), allow_unused=True))


def _make_function():
    import torch

    class HeadCrossEntropy(torch.autograd.Function):
        """Summed cross-entropy of head(hidden); the gradients are computed in the forward pass."""

        @staticmethod
        def forward(ctx, hidden, labels, head, chunk, *params):
            need_hidden = ctx.needs_input_grad[0]
            grad_hidden = torch.empty_like(hidden) if need_hidden else None
            grads = [None] * len(params)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, hidden.shape[0], chunk):
                h = hidden[start : start + chunk].detach().requires_grad_(need_hidden)
                loss, got = _chunk_loss(
                    head, h, labels[start : start + chunk], ([h] if need_hidden else []) + list(params)
                )
                if need_hidden:
                    grad_hidden[start : start + chunk] = got.pop(0)
                for i, g in enumerate(got):
                    if g is not None:
                        grads[i] = g if grads[i] is None else grads[i].add_(g)
                total += loss
            # A parameter no chunk reached (no trained token) still gets a gradient, as in the plain loss.
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
            ctx.grads = [grad_hidden, *grads]
            return total

        @staticmethod
        def backward(ctx, grad_total):
            grad_hidden, *grads = ctx.grads
            ctx.grads = None  # once: the buffers are scaled in place
            scaled = [None if g is None else g.mul_(grad_total.to(g.dtype)) for g in grads]
            grad_hidden = None if grad_hidden is None else grad_hidden.mul_(grad_total.to(grad_hidden.dtype))
            return (grad_hidden, None, None, None, *scaled)

    return HeadCrossEntropy


_FUNCTION = None


def causal_lm_loss(head, hidden, labels, num_items_in_batch=None, chunk: int | None = None):
    """transformers' ForCausalLMLoss of head(hidden) against `labels`, a chunk of positions at a time.

    Position t predicts labels[t + 1]; the sum over trained positions is divided by
    `num_items_in_batch` where given (gradient accumulation), else by their count (the mean).
    """
    import torch
    import torch.nn.functional as F

    global _FUNCTION
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].reshape(-1).to(hidden.device)
    keep = (shifted != IGNORE_INDEX).nonzero().squeeze(1)
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, keep)
    targets = shifted.index_select(0, keep)
    vocab = getattr(head, "out_features", None) or head.weight.shape[0]
    chunk = chunk or chunk_tokens(vocab)
    params = [p for p in head.parameters() if p.requires_grad]
    if torch.is_grad_enabled() and (rows.requires_grad or params):
        _FUNCTION = _FUNCTION or _make_function()
        total = _FUNCTION.apply(rows, targets, head, chunk, *params)
    else:
        total = torch.zeros((), dtype=torch.float32, device=rows.device)
        for i in range(0, rows.shape[0], chunk):
            total += _chunk_loss(head, rows[i : i + chunk], targets[i : i + chunk])[0]
    if num_items_in_batch is None:
        return total / keep.numel()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


_DECISIONS: Any = None  # WeakKeyDictionary: model -> "" (chunked loss is exact) or why it is not


def split_reason(model, inputs: dict[str, Any], autocast=contextlib.nullcontext) -> str:
    """Why `model` must keep transformers' own loss ("" where the chunked loss is exact), decided once."""
    import weakref

    global _DECISIONS
    if _DECISIONS is None:
        _DECISIONS = weakref.WeakKeyDictionary()
    model = _unwrap_wrapper(model)
    if model not in _DECISIONS:
        reason = split_problem(model) or ""
        if not reason:
            try:
                if not _split_matches(model, inputs, autocast):
                    reason = "its logits are not exactly the head applied to its hidden states"
            except ValueError as exc:
                reason = str(exc)
        _DECISIONS[model] = reason
    return _DECISIONS[model]


def chunked_loss(model, inputs: dict[str, Any], num_items_in_batch=None, autocast=contextlib.nullcontext):
    """The model's causal-LM loss of `inputs` (labels included) with the logits taken chunk by chunk.

    `model` may be wrapped (DDP, peft): the forward goes through the wrapper, so its hooks and
    gradient synchronisation work as with a normal call. Only for models `split_reason` accepts.
    """
    labels = inputs["labels"]
    rest = {k: v for k, v in inputs.items() if k != "labels"}
    with HiddenCapture(_unwrap(model).get_output_embeddings()) as capture:
        model(**rest)
    hidden = capture.result(*labels.shape[:2])
    with autocast():  # the head in the precision the model's own forward gives it
        return causal_lm_loss(capture.head, hidden, labels, num_items_in_batch)


def model_loss(model, batch: dict[str, Any], setting: bool | str = "auto"):
    """`model(**batch).loss`, chunked where `setting` (training.chunked_loss) and the model allow it."""
    if setting is not False and "labels" in batch and not split_reason(model, batch):
        return chunked_loss(model, batch)
    return model(**batch).loss


class TrainerLoss:
    """Trainer.compute_loss through `chunked_loss`, where the setting and the model allow it."""

    def __init__(self, setting: bool | str) -> None:
        self.setting = setting
        self.told = False

    def __call__(self, trainer, model, inputs: dict[str, Any], num_items_in_batch=None):
        """The loss as Trainer.compute_loss would return it, or None where transformers' own path is used."""
        if self.setting is False or trainer.label_smoother or trainer.compute_loss_func:
            return None
        if "labels" not in inputs or "shift_labels" in inputs or "input_ids" not in inputs:
            return None
        autocast = trainer.accelerator.autocast
        reason = split_reason(model, inputs, autocast)
        if reason:
            if not self.told:
                self.told = True
                _say(
                    trainer,
                    f"The loss is computed over the whole batch's logits for this model ({reason}); "
                    "training.chunked_loss saves no memory here.",
                    warn=self.setting is True,
                )
            return None
        if not trainer.model_accepts_loss_kwargs:
            num_items_in_batch = None  # Trainer would not have passed it to the model either
        loss = chunked_loss(model, inputs, num_items_in_batch, autocast)
        if trainer.args.average_tokens_across_devices and num_items_in_batch is not None:
            # As Trainer.compute_loss: the count is over all processes, the gradients are averaged.
            scale = trainer.accelerator.num_processes // trainer.get_tp_size()
            loss = loss * (scale if trainer.args.n_gpu <= 1 else trainer.args.n_gpu)
        return loss


def _unwrap_wrapper(model):
    return getattr(model, "module", model)


def _split_matches(model, inputs, autocast) -> bool:
    """On the first few tokens of the batch: are the model's logits head(captured hidden states)?"""
    import torch

    sample = {
        k: v[:1, :32] for k, v in inputs.items() if k != "labels" and torch.is_tensor(v) and v.dim() == 2
    }
    was_training = model.training
    model.eval()  # no dropout, so both passes compute the same function
    try:
        with torch.no_grad(), autocast():
            expected = model(**sample).logits.float()
            head = _unwrap(model).get_output_embeddings()
            with HiddenCapture(head) as capture:
                model(**sample)
            got = head(capture.result(*sample["input_ids"].shape)).float()
    finally:
        model.train(was_training)
    if got.shape != expected.shape:
        return False
    # Relative to the logits' scale, so bf16 rounding passes and a scaled or capped logit fails.
    return bool(((expected - got).abs().max() / expected.abs().max().clamp_min(1e-6)) < 1e-2)


def _say(trainer, message: str, warn: bool) -> None:
    """In the run's event log (through the callback that writes it), else through logging."""
    for callback in trainer.callback_handler.callbacks:
        log = getattr(callback, "log", None)
        if hasattr(log, "emit"):
            if warn:
                log.warning(message)
            else:
                log.emit("info", message=message)
            return
    import logging

    logging.getLogger(__name__).warning(message)
