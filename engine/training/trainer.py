"""The transformers Trainer as the recipe uses it: arguments, collator, and a resumable data order."""

from __future__ import annotations

from pathlib import Path

from engine.config import RunConfig
from engine.data.prepare import PadCollator, PaddingFreeCollator
from engine.models.loading import mixed_precision_dtype
from engine.runs import checkpoints


class ListDataset:
    """Map-style dataset over tokenized rows (Trainer's sampler reads lengths from input_ids)."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def _seeded_length_sampler(batch_size: int, dataset, seed: int):
    """Trainer's length grouping, with each epoch's order a function of (seed, epoch) alone.

    Trainer's own LengthGroupedSampler draws from the global torch RNG when an epoch's iterator
    is made. A resume in the middle of an epoch makes that iterator at another RNG state than
    the uninterrupted run did, so the batches it skips were not the ones already trained. This
    is what accelerate's SeedableRandomSampler does for the plain random order.
    """
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class SeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self) -> None:
            super().__init__(batch_size, dataset=dataset)
            self.seed = seed
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:  # called by Trainer (through accelerate) every epoch
            self.epoch = epoch

        def __iter__(self):
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))

    return SeededLengthGroupedSampler()


def build_trainer(config: RunConfig, run_dir: Path, model, tokenizer, data, device: str, eval_every=None):
    """The Trainer for this run; `eval_every`: the run's evaluation interval (default: the config's)."""
    from transformers import Trainer, TrainingArguments
    from transformers.modeling_outputs import CausalLMOutput

    from engine.models.activation_offload import offloading
    from engine.training.chunked_loss import TrainerLoss

    chunked_loss = TrainerLoss(config.training.chunked_loss)
    offload = config.training.activation_offload  # decided by the recipe (activation_offload_plan)

    class EngineTrainer(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            with offloading(offload, device):  # forward and backward both run inside training_step
                return super().training_step(model, inputs, num_items_in_batch)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # Chunked: no whole-batch logits; evaluation wants the loss only (no compute_metrics).
            if not return_outputs or self.compute_metrics is None:
                loss = chunked_loss(self, model, inputs, num_items_in_batch)
                if loss is not None:
                    return (loss, CausalLMOutput(loss=loss)) if return_outputs else loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy != "group_by_length" or dataset is None:
                return super()._get_train_sampler(train_dataset)
            return _seeded_length_sampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                dataset,
                self.args.data_seed,
            )

    args = training_arguments(config, run_dir, data, device, eval_every, TrainingArguments)
    return EngineTrainer(
        model=model,
        args=args,
        train_dataset=ListDataset(data.train),
        eval_dataset=ListDataset(data.validation) if data.validation else None,
        data_collator=collator(config, tokenizer, device),
        # A full run's checkpoints are whole models: with the tokenizer, chat and export take them.
        processing_class=tokenizer if config.training.method == "full" else None,
    )


def training_arguments(config: RunConfig, run_dir: Path, data, device: str, eval_every, args_class, **extra):
    """The Trainer's arguments for this run (`args_class`: TrainingArguments, or a TRL config; `extra`
    adds to or replaces them)."""
    import torch

    t = config.training
    eval_every = t.eval_every if eval_every is None else eval_every
    has_eval = bool(data.validation) and eval_every > 0
    amp = mixed_precision_dtype(config.quantization, device)
    kwargs = dict(
        output_dir=str(checkpoints.checkpoints_dir(run_dir)),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,  # 0: no clipping (Trainer compares it with 0; None fails there)
        gradient_checkpointing=t.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        logging_steps=1,
        # Log a NaN or infinite loss as it is (Trainer would log the window's average, or 0.0, in its
        # place): EngineCallback stops the run on it before a broken checkpoint is saved.
        logging_nan_inf_filter=False,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_every if has_eval else None,
        save_strategy="steps",
        save_steps=t.save_every,
        save_total_limit=None,  # pruning is ours: it only ever deletes complete checkpoints
        ddp_find_unused_parameters=False,  # every LoRA weight gets a gradient; the search costs a pass
        include_num_input_tokens_seen="non_padding",
        # transformers' own NEFTune: a hook on the (peft-unwrapped) input embeddings, training only.
        neftune_noise_alpha=t.neftune_alpha if t.neftune_alpha > 0 else None,
        seed=t.seed,
        data_seed=t.seed,
        bf16=amp == torch.bfloat16,
        fp16=amp == torch.float16,
        use_cpu=device == "cpu",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_pin_memory=device == "cuda",
        log_level="error",
    )
    return args_class(**{**kwargs, **extra})


def collator(config: RunConfig, tokenizer, device: str):
    """The batch maker training uses (padding-free packing, or padding to a multiple of 8 on CUDA).

    training.padding_free is decided before this (TrainingRecipe.setup_model); an undecided "auto"
    pads, the choice that is right for every model.
    """
    if config.training.padding_free is True:
        return PaddingFreeCollator()
    return PadCollator(tokenizer.pad_token_id, 8 if device == "cuda" else 1)


def packing_is_exact(model, rows, pad_token_id: int) -> bool:
    """Check on two real rows that a packed batch gives the padded batch's logits.

    Models whose attention ignores packed position ids would let sequences attend to each
    other; this catches that before a single step is trained.
    """
    import torch

    by_length = sorted(rows[:8], key=lambda r: len(r["input_ids"]))
    if len(by_length) < 2:
        return True
    sample = [by_length[0], by_length[-1]]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            padded = PadCollator(pad_token_id)(sample)
            packed = PaddingFreeCollator()(sample)
            device = next(model.parameters()).device
            a = model(**{k: v.to(device) for k, v in padded.items()}).logits.float()
            b = model(**{k: v.to(device) for k, v in packed.items()}).logits.float()
    finally:
        model.train(was_training)
    second = b[0, len(sample[0]["input_ids"]) :]
    expected = a[1, : second.shape[0]]
    # Relative to the logits' scale, so bf16 rounding passes and attention leaking between sequences fails.
    return bool(((expected - second).abs().max() / expected.abs().max().clamp_min(1e-6)) < 0.02)
