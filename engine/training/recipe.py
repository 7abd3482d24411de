"""A training run as a recipe object: config + data + 4-bit base + LoRA -> events, checkpoints, adapter.

Order matters for the user: everything that can be checked cheaply (config, model folder,
data file) is checked before the run folder is created or the model is loaded. The fit check
(engine.training.fit_check) builds the same model, tokenizer and data through this recipe.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.config import PREFERENCE_METHODS, RunConfig, config_to_toml
from engine.data.preference import check_method_fits_data
from engine.data.prepare import PreparedData, prepare_data, read_config_data
from engine.data.reading import ReadResult
from engine.errors import ConfigError, is_out_of_memory
from engine.models.loading import inspect_model_folder, load_model, load_tokenizer, pick_device
from engine.runs import checkpoints
from engine.runs.events import EventLog
from engine.runs.lock import LOCK_NAME, RunLock
from engine.runs.names import RUN_INFO_NAME, write_run_name
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
from engine.training.failures import as_user_error, diverged_error, load_oom_error
from engine.training.resume import resume_point, tidy_checkpoints_for_resume
from engine.training.stop import StopRequest, clear_stop_request
from engine.util.files import atomic_write_text, replace_dir

STOP_FILE = STOP_NAME


@dataclass
class RunResult:
    state: str  # done or stopped
    step: int
    adapter: Path | None


def check_run_dir(run_dir: Path, resume: bool) -> None:
    if resume:
        if not (run_dir / CONFIG_NAME).is_file():
            raise ConfigError(
                f"{run_dir} holds no run to resume ({CONFIG_NAME} is missing).",
                "Start a new run without --resume.",
            )
        if engine_alive(run_dir):  # two engines writing one run folder would corrupt it
            raise ConfigError(
                f"{run_dir} is being trained right now by another engine process.",
                "Wait for it to finish, or stop it first (a STOP file in the run folder).",
            )
        return
    # The GUI creates the folder with the engine's output log (and the run's name) before the engine starts.
    made_before = (OUTPUT_LOG_NAME, RUN_INFO_NAME, LOCK_NAME)
    if run_dir.exists() and (
        not run_dir.is_dir() or any(p.name not in made_before for p in run_dir.iterdir())
    ):
        raise ConfigError(
            f"Output folder {run_dir} already exists and is not empty.",
            "Choose a new folder, or add --resume to continue the run in it.",
        )


def train(
    config: RunConfig,
    run_dir: str | Path,
    resume: bool = False,
    echo=None,
    resume_step: int | None = None,
    name: str | None = None,
) -> RunResult:
    """Run (or resume) training into `run_dir`. Raises UserError for anything the user can fix.

    `resume` continues from the latest complete checkpoint, or from `resume_step`'s; a larger
    training.max_steps than the run had trains a finished run further. `name` (checked by
    engine.runs.names.check_run_name) becomes the run's display name once the folder is locked.
    """
    return TrainingRecipe(config, run_dir, echo=echo, name=name).run(resume, resume_step)


class TrainingRecipe:
    """One training run and all it holds, in torchtune's shape: setup(), train(), save().

    run() is the whole run: the run folder's lock, the cheap checks, the folder itself (pid
    file, config, event log), setup, training, saving and one final status however it ends.
    The fit check uses check_inputs(), setup_data() and setup_model() alone.
    """

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path | None = None,
        echo=None,
        ranks: Ranks | None = None,
        name: str | None = None,
    ) -> None:
        self.config = config
        self.name = name  # the display name to store (engine.runs.names), or None to keep the folder's
        self.run_dir = Path(run_dir).resolve() if run_dir is not None else None
        self.echo = echo
        self.ranks = ranks or ranks_from_env()
        self.log = EventLog(None)  # writes nothing until open_run_folder(); other ranks never write
        self.lock: RunLock | None = None
        self.stop = StopRequest(self.run_dir / STOP_FILE) if self.run_dir is not None else None
        self.resume = False
        self.start: tuple[int, Path] | None = None  # the complete checkpoint a resume continues from
        self.read: ReadResult | None = None  # the data file(s), read and checked
        self.device = ""
        self.free_at_load: int | None = None  # memory free where the model loads, just before it does
        self.tokenizer = None
        self.data: PreparedData | None = None
        self.model = None
        self.trainer = None
        self.callback = None  # engine.training.callbacks.EngineCallback
        self.guard = None  # engine.training.validation_guard.ValidationGuard, with validation data
        self.eval_every = 0  # the evaluation interval of this run (training.eval_every, or chosen)

    # -- the whole run -------------------------------------------------------------------------

    def run(self, resume: bool = False, resume_step: int | None = None) -> RunResult:
        if self.ranks.distributed:  # under torchrun / accelerate launch: join the other ranks first
            distributed.start(self.ranks, pick_device())
        try:
            # Rank 0 locks an existing folder before anything else; a new one once it is made.
            if self.ranks.is_main and self.run_dir.is_dir():
                if not (resume and (self.run_dir / CONFIG_NAME).is_file()):
                    check_run_dir(self.run_dir, resume)  # a lock file goes only into a run's own folder
                self._take_lock()
            # Every rank checks (they read the same files, so they agree); then only rank 0 writes.
            self.check_run(resume, resume_step)
            self.check_inputs()
            distributed.barrier()
            self.open_run_folder()
            try:
                return self._train_logged()
            finally:
                self.log.close()
                if self.ranks.is_main:
                    remove_pid_file(self.run_dir)
        finally:
            if self.lock is not None:
                self.lock.release()
            distributed.finish()

    def check_run(self, resume: bool, resume_step: int | None) -> None:
        """The run folder can take this run, and a resume has its checkpoint (nothing is written)."""
        check_run_dir(self.run_dir, resume)
        self.resume = resume
        self.start = resume_point(self.run_dir, self.config, resume_step) if resume else None

    def check_inputs(self) -> None:
        """The model folder and the data, checked before any folder is made or any model loaded."""
        if self.config.model.path:
            resolved = str(Path(self.config.model.path).expanduser().resolve())
            self.config = self.config.with_overrides({"model.path": resolved})
        inspect_model_folder(self.config.model)
        self.read = read_config_data(self.config.data)
        check_method_fits_data(self.config.training.method, self.read.format)
        if self.config.training.init_adapter:
            from engine.models.adapters import check_adapter

            check_adapter(self.config.training.init_adapter, inspect_model_folder(self.config.model))

    def open_run_folder(self) -> None:
        """Rank 0 makes the folder (locked), writes the pid file and the config, opens the event log."""
        if not self.ranks.is_main:
            return
        if self.lock is None:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise as_user_error(exc, self.config, self.run_dir) or exc from None
            self._take_lock()
            check_run_dir(self.run_dir, self.resume)  # again: another engine may have made it meanwhile
        try:
            write_pid_file(self.run_dir)  # lets a reader tell a live run from one that was killed mid-way
        except OSError as exc:
            raise as_user_error(exc, self.config, self.run_dir) or exc from None
        try:
            atomic_write_text(self.run_dir / CONFIG_NAME, config_to_toml(self.config))
            if self.name is not None:  # under the lock: a refused second engine renames nothing
                write_run_name(self.run_dir, self.name)
            clear_stop_request(self.run_dir / STOP_FILE)
            self.log = EventLog(self.run_dir / EVENTS_NAME, echo=_best_effort(self.echo))
        except BaseException as exc:
            remove_pid_file(self.run_dir)
            if isinstance(exc, OSError) and (err := as_user_error(exc, self.config, self.run_dir)):
                raise err from None
            raise

    def _take_lock(self) -> None:
        try:
            self.lock = RunLock(self.run_dir).acquire()  # RunBusy: another engine has this run
        except OSError as exc:
            raise as_user_error(exc, self.config, self.run_dir) or exc from None

    def _train_logged(self) -> RunResult:
        """train(), with a final status in the event log however it ends."""
        self.stop.install_signal_handlers()
        try:
            return self.train()
        except KeyboardInterrupt:
            message = "Interrupted twice; no checkpoint was written for the last steps."
            self._final_events(("status", {"state": "stopped", "message": message}))
            raise
        except BaseException as exc:
            err = as_user_error(exc, self.config, self.run_dir)
            if err is None:
                error = {
                    "kind": "internal",
                    "message": f"{type(exc).__name__}: {exc}",
                    "hint": "This is a bug in Whetstone; the traceback is in engine.log.",
                }
            else:
                error = {"kind": err.kind, "message": err.message, "hint": err.hint}
            if error["kind"] == "io" and self.ranks.is_main:
                self._free_after_failed_save()  # room for the final status, and for the user
            self._final_events(("error", error), ("status", {"state": "failed"}))
            if err is None or err is exc:
                raise
            raise err from None
        finally:
            self.stop.restore_signal_handlers()

    def _final_events(self, *events: tuple[str, dict]) -> None:
        """Write how the run ended; each event is tried once, and a full disk stops none of them."""
        for kind, fields in events:
            try:
                if kind == "status":
                    self.log.status(**fields)
                else:
                    self.log.error(**fields)
            except OSError:
                continue  # EventLog cut the line off again: the log ends with its last whole event

    def _free_after_failed_save(self) -> None:
        """Remove what a save cut short (never a complete checkpoint); this engine holds the lock."""
        checkpoints.remove_incomplete(self.run_dir)
        shutil.rmtree(self.run_dir / f".{ADAPTER_NAME}.partial", ignore_errors=True)

    # -- setup ---------------------------------------------------------------------------------

    def setup(self) -> bool:
        """Tokenizer and data, then the model with LoRA and the Trainer; False if a stop came first."""
        self.setup_data()
        if self.ranks.is_main:
            tidy_checkpoints_for_resume(self.run_dir, self.resume, self.start, self.log)
        distributed.barrier()  # the other ranks read the checkpoint only once rank 0 has tidied
        if distributed.any_rank(self.stop.requested):
            return False
        self.setup_model()
        self.setup_trainer()
        return True

    def setup_data(self) -> None:
        """Pick the device, load the tokenizer, tokenize the data and report what it held."""
        self.device = pick_device()
        if self.device == "cpu":
            self.log.warning(
                "No CUDA GPU found: training runs the same 4-bit path on the CPU, which is slow."
            )
        self.tokenizer = load_tokenizer(self.config.model)
        self.data = data = prepare_data(
            self.tokenizer, self.config.data, self.read, self.config.training.method
        )
        report = data.report
        self.log.emit(
            "data",
            format=data.format,
            train_rows=len(data.train),
            validation_rows=len(data.validation),
            validation={"rows": len(data.validation), "source": data.validation_source},
            **report.as_dict(),
        )
        self._plan_validation()
        if report.skipped:
            detail = ", ".join(f"{n} {reason}" for reason, n in report.skipped.items())
            self.log.warning(
                f"Skipped {sum(report.skipped.values())} rows: {detail}.", problems=report.first_problems[:20]
            )
        if report.truncated_rows:
            self.log.warning(
                f"{report.truncated_rows} rows are longer than data.max_length = "
                f"{self.config.data.max_length} and were truncated ({report.truncated_tokens} tokens cut, "
                f"up to {report.longest_truncated_by} in one row)."
            )

    def _plan_validation(self) -> None:
        """The evaluation interval (chosen from the run's length unless set) and the pre-run warnings."""
        from engine.training.run_warnings import run_warnings
        from engine.training.validation_guard import auto_eval_every, planned_steps

        t, data = self.config.training, self.data
        self.eval_every = t.eval_every
        if data.validation and not self.eval_every:
            steps = t.max_steps or planned_steps(
                len(data.train), t.batch_size, t.gradient_accumulation, self.ranks.world_size, t.epochs
            )
            self.eval_every = auto_eval_every(steps)
        if data.validation_source == "auto":
            self.log.emit(
                "info",
                message=f"Held out {len(data.validation)} of the {len(data.train) + len(data.validation)} "
                f'rows for validation (data.validation_ratio = "auto"); evaluating every '
                f"{self.eval_every} steps.",
            )
        world = self.ranks.world_size
        for warning in run_warnings(self.config, len(data.train), len(data.validation), world):
            self.log.warning(warning.message, code=warning.code)

    def setup_model(self) -> None:
        """The 4-bit base with what the method trains, and training.padding_free decided (a bool)."""
        from engine.models.checkpointing import free_device_memory
        from engine.training.lora import add_lora, add_prompt_tuning

        self.free_at_load = free_device_memory(self.device)
        self.decide_checkpointing()
        self._decide_attention()
        t = self.config.training
        if t.method == "full":
            from engine.training.full_finetune import load_full_model

            model = load_full_model(
                self.config.model,
                self.config.quantization,
                self.device,
                t.full_layers,
                t.gradient_checkpointing,
                t.attention,
            )
        else:
            model = load_model(self.config.model, self.config.quantization, self.device, t.attention)
            self._cache_cpu_weights(model)
        self._fuse_kernels(model)
        if self.config.data.replay_ratio > 0:
            self.add_replay(model)  # from the base itself, before LoRA is added
        if t.method == "full":
            pass  # the base's own weights train
        elif t.method == "prompt_tuning":
            model = add_prompt_tuning(model, t.prompt_tuning_tokens, t.gradient_checkpointing, t.seed)
        else:
            model = add_lora(model, self.config.lora, t.gradient_checkpointing, t.seed, t.init_adapter)
            if t.init_adapter:
                self.log.emit("info", message=f"Training on from the adapter in {t.init_adapter}.")
        self.model = model
        packed, why = self._decide_padding_free(model)
        decided = {"training.padding_free": packed, "training.activation_offload": self._decide_offload()}
        if t.method == "prompt_tuning":
            decided["training.chunked_loss"] = False  # the virtual tokens shift the logits off the labels
        self.config = self.config.with_overrides(decided)
        if t.method == "full":
            from engine.training.full_finetune import trainable_parameters

            trainable, total = trainable_parameters(model)
        else:
            trainable, total = model.get_nb_trainable_parameters()
        self.log.emit(
            "model",
            device=self.device,
            dtype=str(model.dtype).replace("torch.", ""),
            trainable_parameters=trainable,
            total_parameters=total,
            load_in_4bit=self.config.quantization.load_in_4bit and t.method != "full",
            world_size=self.ranks.world_size,
            method=t.method,
            padding_free=packed,
            padding_free_reason=why,
        )

    def decide_checkpointing(self) -> None:
        """training.gradient_checkpointing "auto" → a bool, from the estimate and the memory free now
        (the fit check calls it before loading, as training does here)."""
        from engine.errors import ModelError
        from engine.models.checkpointing import free_device_memory, with_checkpointing_decided

        if self.config.training.gradient_checkpointing != "auto":
            return
        path = self.config.model.path
        if self.ranks.world_size > 1:  # every rank must run the same graph: no per-GPU decision
            decided = self.config.with_overrides({"training.gradient_checkpointing": True})
            why = 'training.gradient_checkpointing = "auto" on several GPUs'
        else:
            try:
                # setup_model has just measured it; the fit check calls this on its own.
                free = self.free_at_load if self.free_at_load is not None else free_device_memory(self.device)
                decided, why = with_checkpointing_decided(path, self.config, self.device, free)
            except ModelError:  # an architecture the estimate cannot read: the safe choice
                decided = self.config.with_overrides({"training.gradient_checkpointing": True})
                why = 'training.gradient_checkpointing = "auto", and this model has no memory estimate'
        self.config = decided
        on = decided.training.gradient_checkpointing
        state = "on" if on else "off"
        self.log.emit("info", message=f"Gradient checkpointing {state}: {why}.", gradient_checkpointing=on)

    def _decide_attention(self) -> None:
        """training.attention as this device can train with it (engine.models.packing)."""
        from engine.models.packing import training_attention

        wanted = self.config.training.attention
        attention, why = training_attention(wanted, self.device)
        if attention != wanted:
            self.log.warning(f"Attention: {attention} instead of {wanted}: {why}.")
            self.config = self.config.with_overrides({"training.attention": attention})

    def _fuse_kernels(self, model) -> None:
        """training.fused_kernels: Liger's kernels in the loaded model (engine.models.fused_kernels)."""
        from engine.models.fused_kernels import apply_fused_kernels, fused_kernels_check, fused_kernels_plan

        setting = self.config.training.fused_kernels
        model_type = getattr(model.config, "model_type", "") or ""
        fused, why = fused_kernels_plan(setting, self.device, model_type)
        failed = fused and fused_kernels_check(model, self.device)
        if failed:  # the plan allowed them, this GPU or toolchain cannot run them: train unfused
            fused, why = False, f"Liger's kernels failed their check on this machine: {failed}"
        if fused:
            apply_fused_kernels(model)
        if (setting is True or failed) and not fused:  # asked for (or expected), not granted
            self.log.warning(f"Fused kernels are off: {why}.")
        elif self.device == "cuda":  # on the CPU "auto" never applies: nothing to say
            state = "on" if fused else "off"
            self.log.emit("info", message=f"Fused kernels {state}: {why}.", fused_kernels=fused)
        self.config = self.config.with_overrides({"training.fused_kernels": fused})

    def _decide_offload(self) -> bool:
        """training.activation_offload where it applies (engine.models.activation_offload); says why."""
        from engine.models.activation_offload import activation_offload_plan

        t = self.config.training
        offload, why = activation_offload_plan(t.activation_offload, self.device, t.method)
        if offload:
            self.log.emit("info", message=f"Activation offload on: {why}.", activation_offload=True)
        elif t.activation_offload:  # asked for, not granted
            self.log.warning(f"Activation offload is off: {why}.")
        return offload

    def _decide_padding_free(self, model) -> tuple[bool, str]:
        """Pack or pad (engine.models.packing), verified on the run's rows; the log says which and why."""
        from engine.models.packing import model_attention, padding_free_plan
        from engine.training.trainer import packing_is_exact

        setting, method = self.config.training.padding_free, self.config.training.method
        if method in PREFERENCE_METHODS or method == "prompt_tuning":
            why = f"{method} pads its batches (its trainer lines up the sequences itself)"
            if setting is True:
                self.log.warning(f"Padding-free batches are off: {why}.")
            return False, why
        packed, why = padding_free_plan(setting, self.device, model_attention(model))
        if packed and not packing_is_exact(model, self.data.train, self.tokenizer.pad_token_id):
            why = "this model's attention mixes packed sequences (checked on two of the run's rows)"
            message = "This model mixes packed sequences, so padding-free batches are off for this run."
            if setting is True:  # asked for, not granted: worth a warning; "auto" just says what it chose
                self.log.warning(message)
            else:
                self.log.emit("info", message=message, padding_free=False)
            return False, why
        state = "on" if packed else "off"
        self.log.emit("info", message=f"Padding-free batches {state}: {why}.", padding_free=packed)
        return packed, why

    def _cache_cpu_weights(self, model) -> None:
        """training.cpu_weight_cache: the 4-bit weights dequantized once on the CPU (same results, faster)."""
        from engine.models.cpu_weights import cache_dequantized_weights, cpu_weight_cache_plan

        cached, why = cpu_weight_cache_plan(self.config.training.cpu_weight_cache, self.device, model)
        if cached:
            cache_dequantized_weights(model)
        elif self.config.training.cpu_weight_cache is True:  # asked for, not granted: say why
            self.log.warning(f"The CPU weight cache is off: {why}.")
            return
        if self.device == "cpu":
            state = "on" if cached else "off"
            self.log.emit("info", message=f"CPU weight cache {state}: {why}.", cpu_weight_cache=cached)

    def add_replay(self, model) -> None:
        """Mix the base's own answers to general prompts into the training rows (engine.eval.replay)."""
        from engine.eval.replay import replay_conversations, replay_count, replay_prompts, replay_rows

        cfg = self.config.data
        count = replay_count(cfg.replay_ratio, len(self.data.train), len(replay_prompts()))
        self.log.emit("info", message=f"Preparing {count} replay rows from the base model's own answers…")
        from engine.models.demo import demo_replay_answers

        folder = inspect_model_folder(self.config.model)
        conversations = replay_conversations(
            model,
            self.tokenizer,
            folder.fingerprint(),
            self.config.quantization,
            self.device,
            count,
            cfg.seed,
            shipped=demo_replay_answers(folder.path),
        )
        rows = replay_rows(conversations, self.tokenizer, cfg.max_length)
        self.data.train = self.data.train + rows
        self.log.emit(
            "info",
            message=f"Replay: mixed {len(rows)} of the base model's own answers to general prompts into "
            f"the {len(self.data.train) - len(rows)} training rows (data.replay_ratio = {cfg.replay_ratio}).",
            replay_rows=len(rows),
        )

    def setup_trainer(self) -> None:
        from transformers.trainer_callback import PrinterCallback

        from engine.training.callbacks import EngineCallback
        from engine.training.trainer import build_trainer
        from engine.training.validation_guard import ValidationGuard

        t = self.config.training
        build = build_trainer
        if t.method in PREFERENCE_METHODS:
            from engine.training.preference import build_preference_trainer as build
        self.trainer = build(
            self.config, self.run_dir, self.model, self.tokenizer, self.data, self.device, self.eval_every
        )
        if self.data.validation:
            self.guard = ValidationGuard(
                self.log, self.run_dir, t.early_stopping_patience, t.early_stopping_min_delta, self.ranks
            )
            self.trainer.add_callback(self.guard)  # before EngineCallback, which asks it what to keep
        self.callback = EngineCallback(
            self.log, self.run_dir, self.device, t.keep_checkpoints, self.stop, self.ranks, self.guard
        )
        self.trainer.add_callback(self.callback)
        self.trainer.remove_callback(PrinterCallback)  # our events are the output, not Trainer's dict prints

    def release_model(self) -> None:
        """Drop the model, Trainer and optimizer (the fit check frees memory between attempts)."""
        self.model = self.trainer = self.callback = self.guard = None

    # -- train and save ------------------------------------------------------------------------

    def train(self) -> RunResult:
        """Set up, train from the resume point to the end or a stop request, then save the adapter."""
        self.log.status("loading")
        if not self._setup_within_memory():
            self.log.status("stopped", step=0, message="Stopped before training started.")
            return RunResult("stopped", 0, None)
        self.trainer.train(resume_from_checkpoint=str(self.start[1]) if self.start is not None else None)
        step = self.trainer.state.global_step
        if self.callback.diverged is not None:
            kept = checkpoints.latest_complete(self.run_dir)
            raise diverged_error(self.config, self.device, *self.callback.diverged, kept)
        if self.callback.stopped:
            latest = checkpoints.latest_complete(self.run_dir)
            self.log.status("stopped", step=step, checkpoint=str(latest or ""), paused=self.stop.pause)
            return RunResult("stopped", step, None)
        # With validation rows Trainer evaluates the last step too (before its checkpoint), so the
        # guard has judged every checkpoint that can be the best.
        self.log.status("saving", step=step)
        use_best = self.guard is not None and self.config.training.final_adapter == "best"
        source = self.guard.best_checkpoint(step) if use_best else None
        adapter = self.save(source)
        ending = {"adapter": str(adapter), "adapter_step": source[0] if source else step}
        if self.guard is not None and self.guard.early_stopped:
            best = f"; the adapter is the best checkpoint's (step {source[0]})" if source else ""
            ending.update(
                reason="early_stopping",
                message=f"Stopped early: the validation loss stopped improving{best}.",
            )
        self.log.status("done", step=step, **ending)
        return RunResult("done", step, adapter)

    def _setup_within_memory(self) -> bool:
        """setup(), where out of memory means the model does not fit (batch size, length or
        checkpointing change nothing before the first step). The fit check calls setup_model itself
        and reports such an out-of-memory as its answer."""
        try:
            return self.setup()
        except Exception as exc:
            # Still reading the data (nothing measured yet): the general out-of-memory words.
            if not is_out_of_memory(exc) or self.free_at_load is None:
                raise
            raise load_oom_error(self.config, self.device, self.free_at_load) from None

    def save(self, source: tuple[int, Path] | None = None) -> Path:
        """Write the adapter (with the tokenizer) into RUN_DIR/adapter, whole or not at all.

        `source`: a complete checkpoint whose adapter files are copied instead of the model's weights.
        """
        if self.config.training.method == "full":  # a whole model folder, RUN_DIR/model
            from engine.runs.output import MODEL_NAME
            from engine.training.full_finetune import save_full_model

            target = self.run_dir / MODEL_NAME
            if self.ranks.is_main:
                save_full_model(self.model, self.tokenizer, target, source[1] if source else None)
            distributed.barrier()
            return target
        adapter = self.run_dir / ADAPTER_NAME
        if self.ranks.is_main:  # every rank holds the same adapter; one writes it
            staging = self.run_dir / f".{ADAPTER_NAME}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            if source is None:
                # Only the trained adapter: dpo/kto also hold a frozen "ref" copy beside it.
                self.model.save_pretrained(str(staging), selected_adapters=["default"])
            else:
                staging.mkdir()
                for path in source[1].iterdir():  # what PeftModel.save_pretrained wrote into the checkpoint
                    if path.is_file() and (path.name.startswith("adapter_") or path.name == "README.md"):
                        shutil.copy2(path, staging / path.name)
            self.tokenizer.save_pretrained(str(staging))
            replace_dir(staging, adapter)
        distributed.barrier()
        return adapter


def _best_effort(echo):
    """Progress lines are a courtesy: a full disk (or a closed pipe) under stdout must not end the
    run; events.jsonl is the record."""
    if echo is None:
        return None

    def say(event: dict) -> None:
        try:
            echo(event)
        except OSError:
            pass

    return say


__all__ = ["train", "request_stop", "RunResult", "TrainingRecipe"]
