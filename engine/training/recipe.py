"""A training run: config + data + 4-bit base + LoRA -> events, checkpoints and an adapter.

Order matters for the user: everything that can be checked cheaply (config, model folder,
data file) is checked before the run folder is created or the model is loaded.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.config import RunConfig, config_to_toml
from engine.data.prepare import PadCollator, PaddingFreeCollator, prepare_data, read_config_data
from engine.errors import ConfigError, UserError
from engine.models.loading import (
    inspect_model_folder,
    load_model,
    load_tokenizer,
    mixed_precision_dtype,
    pick_device,
)
from engine.runs import checkpoints
from engine.runs.events import EventLog, read_events
from engine.runs.state import (
    ADAPTER_NAME,
    CONFIG_NAME,
    EVENTS_NAME,
    OUTPUT_LOG_NAME,
    STOP_NAME,
    engine_alive,
    remove_pid_file,
    request_stop,
    write_pid_file,
)
from engine.training import distributed
from engine.training.distributed import Ranks, ranks_from_env
from engine.util.files import atomic_write_text, replace_dir

STOP_FILE = STOP_NAME


@dataclass
class RunResult:
    state: str  # done or stopped
    step: int
    adapter: Path | None


class _ListDataset:
    """Map-style dataset over tokenized rows (Trainer's sampler reads lengths from input_ids)."""

    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def check_run_dir(run_dir: Path, resume: bool) -> None:
    if resume:
        if not (run_dir / CONFIG_NAME).is_file():
            raise ConfigError(f"{run_dir} holds no run to resume ({CONFIG_NAME} is missing).", "Start a new run without --resume.")
        if engine_alive(run_dir):  # two engines writing one run folder would corrupt it
            raise ConfigError(f"{run_dir} is being trained right now by another engine process.",
                              "Wait for it to finish, or stop it first (a STOP file in the run folder).")
        return
    # The GUI creates the folder with the engine's output log in it before the engine starts.
    if run_dir.exists() and (not run_dir.is_dir() or any(p.name != OUTPUT_LOG_NAME for p in run_dir.iterdir())):
        raise ConfigError(
            f"Output folder {run_dir} already exists and is not empty.",
            "Choose a new folder, or add --resume to continue the run in it.",
        )


def oom_error(config: RunConfig) -> UserError:
    t, d = config.training, config.data
    steps = [f"lower training.batch_size (now {t.batch_size}; raise gradient_accumulation to keep the effective batch)"]
    steps.append(f"shorten data.max_length (now {d.max_length})")
    if not t.gradient_checkpointing:
        steps.append("turn on training.gradient_checkpointing")
    if config.lora.rank > 16:
        steps.append(f"lower lora.rank (now {config.lora.rank})")
    return UserError("Out of memory while training.", "Try: " + "; ".join(steps) + ".", kind="oom")


def train(config: RunConfig, run_dir: str | Path, resume: bool = False, echo=None,
          resume_step: int | None = None) -> RunResult:
    """Run (or resume) training into `run_dir`. Raises UserError for anything the user can fix.

    `resume` continues from the latest complete checkpoint, or from `resume_step`'s; a larger
    training.max_steps than the run had trains a finished run further.
    """
    run_dir = Path(run_dir).resolve()
    ranks = ranks_from_env()
    if ranks.distributed:  # under torchrun / accelerate launch: join the other ranks first
        distributed.start(ranks, pick_device())
    try:
        return _train_checked(config, run_dir, resume, echo, resume_step, ranks)
    finally:
        distributed.finish()


def _train_checked(config: RunConfig, run_dir: Path, resume: bool, echo, resume_step: int | None,
                   ranks: Ranks) -> RunResult:
    # Every rank checks (they read the same files, so they agree); then only rank 0 writes.
    check_run_dir(run_dir, resume)
    start = resume_point(run_dir, config, resume_step) if resume else None
    config = config.with_overrides({"model.path": str(Path(config.model.path).expanduser().resolve())})
    inspect_model_folder(config.model)

    # Read and check the data before any folder is made or any model is loaded.
    read = read_config_data(config.data)
    distributed.barrier()
    if not ranks.is_main:
        log = EventLog(None)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_pid_file(run_dir)  # lets a reader tell a live run from one that was killed mid-way
        try:
            atomic_write_text(run_dir / CONFIG_NAME, config_to_toml(config))
            (run_dir / STOP_FILE).unlink(missing_ok=True)
            log = EventLog(run_dir / EVENTS_NAME, echo=echo)
        except BaseException:
            remove_pid_file(run_dir)
            raise
    try:
        return _train(config, run_dir, resume, start, log, read, ranks)
    except KeyboardInterrupt:
        log.status("stopped", message="Interrupted twice; no checkpoint was written for the last steps.")
        raise
    except BaseException as exc:
        err = as_user_error(exc, config, run_dir)
        if err is None:
            log.error("internal", f"{type(exc).__name__}: {exc}", "This is a bug in Whetstone; the traceback is in engine.log.")
            log.status("failed")
            raise
        log.error(err.kind, err.message, err.hint)
        log.status("failed")
        if err is exc:
            raise
        raise err from None
    finally:
        log.close()
        if ranks.is_main:
            remove_pid_file(run_dir)


def as_user_error(exc: BaseException, config: RunConfig, run_dir: Path) -> UserError | None:
    """The user-fixable meaning of an exception (bad input, out of memory, full disk), if it has one."""
    import torch

    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return oom_error(config)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return UserError(f"The disk is full ({exc.filename or run_dir}).",
                         "Free some space, then continue with --resume: complete checkpoints are kept.", kind="io")
    return None


def resume_point(run_dir: Path, config: RunConfig, step: int | None) -> tuple[int, Path] | None:
    """The complete checkpoint a resume starts from (checked before anything is written)."""
    done = checkpoints.complete_checkpoints(run_dir)
    if step is not None:
        chosen = [(s, p) for s, p in done if s == step]
        if not chosen:
            steps = ", ".join(str(s) for s, _ in done) or "none"
            raise ConfigError(f"{run_dir} has no complete checkpoint at step {step} (complete: {steps}).",
                              "Pick one of the complete checkpoints.")
        point = chosen[0]
    else:
        point = done[-1] if done else None
    max_steps = config.training.max_steps
    if point and max_steps and point[0] >= max_steps:
        raise ConfigError(f"The run is already at step {point[0]} and training.max_steps = {max_steps}.",
                          "To train further, set training.max_steps above the step the run has reached.")
    return point


def _train(config: RunConfig, run_dir: Path, resume: bool, start: tuple[int, Path] | None, log: EventLog,
           read, ranks: Ranks) -> RunResult:
    from engine.training.callbacks import StopRequest

    stop = StopRequest(run_dir / STOP_FILE)
    stop.install_signal_handlers()
    try:
        return _train_with_stop(config, run_dir, resume, start, log, stop, read, ranks)
    finally:
        stop.restore_signal_handlers()


def _train_with_stop(config: RunConfig, run_dir: Path, resume: bool, start, log: EventLog, stop,
                     read, ranks: Ranks) -> RunResult:
    from engine.training.callbacks import EngineCallback

    log.status("loading")
    device = pick_device()
    if device == "cpu":
        log.warning("No CUDA GPU found: training runs the same 4-bit path on the CPU, which is slow.")

    tokenizer = load_tokenizer(config.model)
    data = prepare_data(tokenizer, config.data, read)
    report = data.report
    log.emit("data", format=data.format, train_rows=len(data.train), validation_rows=len(data.validation), **report.as_dict())
    if report.skipped:
        detail = ", ".join(f"{n} {reason}" for reason, n in report.skipped.items())
        log.warning(f"Skipped {sum(report.skipped.values())} rows: {detail}.", problems=report.first_problems[:20])
    if report.truncated_rows:
        log.warning(
            f"{report.truncated_rows} rows are longer than data.max_length = {config.data.max_length} and were "
            f"truncated ({report.truncated_tokens} tokens cut, up to {report.longest_truncated_by} in one row)."
        )

    resume_from = str(start[1]) if start is not None else None
    if ranks.is_main:
        tidy_checkpoints_for_resume(run_dir, resume, start, log)
    distributed.barrier()  # the other ranks read the checkpoint only once rank 0 has tidied
    if distributed.any_rank(stop.requested):
        log.status("stopped", step=0, message="Stopped before training started.")
        return RunResult("stopped", 0, None)

    model = load_model(config.model, config.quantization, device)
    from engine.training.lora import add_lora

    t = config.training
    model = add_lora(model, config.lora, t.gradient_checkpointing, t.seed)
    if t.padding_free and not packing_is_exact(model, data.train, tokenizer.pad_token_id):
        log.warning("This model mixes packed sequences, so padding-free batches are off for this run.")
        config = config.with_overrides({"training.padding_free": False})
    trainable, total = model.get_nb_trainable_parameters()
    log.emit("model", device=device, dtype=str(model.dtype).replace("torch.", ""), trainable_parameters=trainable,
             total_parameters=total, load_in_4bit=config.quantization.load_in_4bit, world_size=ranks.world_size)

    from transformers.trainer_callback import PrinterCallback

    trainer = _build_trainer(config, run_dir, model, tokenizer, data, device)
    callback = EngineCallback(log, run_dir, device, t.keep_checkpoints, stop, ranks)
    trainer.add_callback(callback)
    trainer.remove_callback(PrinterCallback)  # our events are the output, not Trainer's dict prints
    trainer.train(resume_from_checkpoint=resume_from)
    step = trainer.state.global_step

    if callback.stopped:
        log.status("stopped", step=step, checkpoint=str(checkpoints.latest_complete(run_dir) or ""),
                   paused=stop.pause)
        return RunResult("stopped", step, None)

    if data.validation and (not t.eval_every or step % t.eval_every):
        metrics = trainer.evaluate()
        log.emit("eval", step=step, epoch=trainer.state.epoch, eval_loss=metrics.get("eval_loss"))
    log.status("saving", step=step)
    adapter = run_dir / ADAPTER_NAME
    if ranks.is_main:  # every rank holds the same adapter; one writes it
        staging = run_dir / f".{ADAPTER_NAME}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        replace_dir(staging, adapter)
    distributed.barrier()
    log.status("done", step=step, adapter=str(adapter))
    return RunResult("done", step, adapter)


def tidy_checkpoints_for_resume(run_dir: Path, resume: bool, start: tuple[int, Path] | None, log: EventLog) -> None:
    """Before a resume: drop half-written checkpoints, and later ones when branching from an earlier step."""
    if start is not None:
        removed = checkpoints.remove_incomplete(run_dir)
        if removed:
            log.warning(f"Removed {len(removed)} incomplete checkpoint(s) left by an interrupted save.")
        later = checkpoints.discard_after(run_dir, start[0])
        if later:  # the run branches from an earlier step; later checkpoints belong to the old branch
            log.warning(f"Resuming from step {start[0]}: removed the later checkpoint(s) at step "
                        f"{', '.join(str(s) for s in later)}.")
    elif resume:
        checkpoints.remove_incomplete(run_dir)
        log.warning("No complete checkpoint to resume from: starting from step 0.")


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
    second = b[0, len(sample[0]["input_ids"]):]
    expected = a[1, : second.shape[0]]
    # Relative to the logits' scale, so bf16 rounding passes and attention leaking between sequences fails.
    return bool(((expected - second).abs().max() / expected.abs().max().clamp_min(1e-6)) < 0.02)


def _build_trainer(config: RunConfig, run_dir: Path, model, tokenizer, data, device: str):
    import torch
    from transformers import Trainer, TrainingArguments

    t = config.training
    has_eval = bool(data.validation) and t.eval_every > 0
    amp = mixed_precision_dtype(config.quantization, device)
    args = TrainingArguments(
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
        max_grad_norm=t.max_grad_norm if t.max_grad_norm > 0 else None,
        gradient_checkpointing=t.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        logging_steps=1,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=t.eval_every if has_eval else None,
        save_strategy="steps",
        save_steps=t.save_every,
        save_total_limit=None,  # pruning is ours: it only ever deletes complete checkpoints
        ddp_find_unused_parameters=False,  # every LoRA weight gets a gradient; the search costs a pass
        include_num_input_tokens_seen="non_padding",
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
    return Trainer(
        model=model,
        args=args,
        train_dataset=_ListDataset(data.train),
        eval_dataset=_ListDataset(data.validation) if data.validation else None,
        data_collator=PaddingFreeCollator() if t.padding_free
        else PadCollator(tokenizer.pad_token_id, 8 if device == "cuda" else 1),
    )


def run_state(run_dir: str | Path) -> str | None:
    """The last status a run wrote (loading, training, saving, done, stopped, failed), if any."""
    states = [e.get("state") for e in read_events(Path(run_dir) / EVENTS_NAME) if e.get("type") == "status"]
    return states[-1] if states else None


__all__ = ["train", "run_state", "request_stop", "RunResult"]
