"""Preference tuning (DPO, ORPO, KTO) through TRL's trainers, on the same 4-bit base + LoRA as sft.

The rows arrive tokenized by engine.data.preference (the same rendering as sft rows and the Data
tab), so each trainer's own tokenizing step is replaced by a pass-through. The reference model is
the policy with its adapter switched to a frozen copy of the starting adapter (TRL adds it as "ref"):
the base for a fresh adapter, the sft run's weights with --init-adapter; no second model in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from engine.config import RunConfig
from engine.training.trainer import training_arguments

# TRL's log keys -> the names our metrics and eval events carry (PREF_SPEC in issue 22's note).
LOG_KEYS = {
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    "rewards/margins": "reward_margin",
    "rewards/accuracies": "reward_accuracy",
    "kl": "kl",
    "nll_loss": "nll_loss",
    "log_odds_ratio": "log_odds_ratio",
}


def preference_fields(logs: dict, prefix: str = "") -> dict[str, float]:
    """The preference figures in a Trainer log, under our names (`prefix` "eval_" for evaluations)."""
    return {
        prefix + ours: logs[prefix + theirs] for theirs, ours in LOG_KEYS.items() if prefix + theirs in logs
    }


def _dataset(rows):
    from datasets import Dataset

    return Dataset.from_list(rows) if rows else None


class _Run(NamedTuple):
    """What every preference trainer is built from (the recipe's state for this run)."""

    config: RunConfig
    run_dir: Path
    model: object
    tokenizer: object
    data: object  # engine.data.prepare.PreparedData
    device: str
    eval_every: int


def build_preference_trainer(config: RunConfig, run_dir: Path, model, tokenizer, data, device, eval_every):
    """The TRL trainer for training.method dpo, orpo or kto, with the run's own Trainer arguments."""
    run = _Run(config, run_dir, model, tokenizer, data, device, eval_every)
    return {"dpo": _dpo, "orpo": _orpo, "kto": _kto}[config.training.method](run)


def _build(run: _Run, trainer_class, config_class, train=None, validation=None, **extra):
    """`trainer_class` with the run's Trainer arguments, TRL's shared ones and `extra`; `train` and
    `validation` replace the data's rows (as prepared for that trainer)."""
    args = training_arguments(
        run.config,
        run.run_dir,
        run.data,
        run.device,
        run.eval_every,
        config_class,
        beta=run.config.training.preference_beta,
        max_length=run.config.data.max_length,
        disable_dropout=True,
        dataset_num_proc=None,
        **extra,
    )
    return trainer_class(
        model=run.model,
        args=args,
        train_dataset=_dataset(run.data.train if train is None else train),
        eval_dataset=_dataset(run.data.validation if validation is None else validation),
        processing_class=run.tokenizer,
    )


def _dpo(run: _Run):
    from trl import DPOConfig, DPOTrainer

    class EngineDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # rows come tokenized by engine.data.preference

        def create_model_card(self, *args, **kwargs):
            pass  # no README.md in the checkpoints folder

    return _build(
        run,
        EngineDPOTrainer,
        DPOConfig,
        train_sampling_strategy="random",  # length grouping reads input_ids, which pairs do not have
        loss_type=[run.config.training.dpo_loss],
    )


def _kto(run: _Run):
    from trl import KTOConfig, KTOTrainer

    class EngineKTOTrainer(KTOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if self.calculate_KL:  # TRL's KL estimate: each completion against its batch neighbour's prompt
                size = args.per_device_train_batch_size

                def shifted(batch):
                    batch["KL_completion_ids"] = [batch["completion_ids"][-1]] + batch["completion_ids"][:-1]
                    return batch

                dataset = dataset.map(shifted, batched=True, batch_size=size)
            return dataset

        def create_model_card(self, *args, **kwargs):
            pass

    if run.config.training.batch_size < 2:
        from engine.errors import ConfigError

        raise ConfigError(
            "KTO needs training.batch_size of at least 2 (its KL estimate pairs each reply with "
            "another row's prompt in the same batch).",
            "Set --batch-size 2 or more.",
        )
    import random

    # KTO reads its rows in order (the KL pairs are fixed per batch): shuffle them once, seeded.
    train = list(run.data.train)
    random.Random(run.config.training.seed).shuffle(train)
    return _build(run, EngineKTOTrainer, KTOConfig, train=train, train_sampling_strategy="sequential")


def _orpo(run: _Run):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    max_length = run.config.data.max_length

    class EngineORPOTrainer(ORPOTrainer):
        def tokenize_row(self, feature, model=None):
            """ORPO's sequences from our ids: prompt + answer, labels on the answer (cut at max_length)."""
            prompt = feature["prompt_ids"]
            out = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
            for side in ("chosen", "rejected"):
                ids = (prompt + feature[f"{side}_ids"])[:max_length]
                labels = ([-100] * len(prompt) + feature[f"{side}_ids"])[:max_length]
                out.update(
                    {
                        f"{side}_input_ids": ids,
                        f"{side}_attention_mask": [1] * len(ids),
                        f"{side}_labels": labels,
                    }
                )
            return out

        def _track_num_input_tokens(self, inputs):
            # ORPO's batches have no input_ids, so Trainer would count nothing (tokens/s 0).
            tokens = inputs["chosen_attention_mask"].sum() + inputs["rejected_attention_mask"].sum()
            seen = self.accelerator.gather(tokens.to(self.args.device)).sum().item()
            self.state.num_input_tokens_seen += seen

        def create_model_card(self, *args, **kwargs):
            pass

    def with_text(rows):
        # ORPO's own preparation looks for text columns first; empty text passes it unchanged.
        return [{**row, "prompt": "", "chosen": "", "rejected": ""} for row in rows]

    return _build(
        run,
        EngineORPOTrainer,
        ORPOConfig,
        train=with_text(run.data.train),
        validation=with_text(run.data.validation),
        train_sampling_strategy="random",
    )
