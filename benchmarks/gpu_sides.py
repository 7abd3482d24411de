"""One side of gpu_throughput.py, in its own process: the engine, the plain baseline, or unsloth.

Each side trains the same model folder on the same chat file with the same batch, max length,
LoRA and step count; then, in the same process and with the same model, it searches the longest
sequence that still trains at batch 1 (a forward, backward and optimizer step through the side's
own Trainer and collator). Results are printed as `RESULT {json}` lines, the throughput part first,
so a side killed by the time limit still reports what it measured.
"""

from __future__ import annotations

import gc
import json
import random
import time
from pathlib import Path

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def report(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def device_info() -> dict:
    import torch

    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory / 2**20
        return {"device": torch.cuda.get_device_name(), "cuda": True, "device_memory_mb": total}
    return {"device": "cpu", "cuda": False}


def memory_estimator(model: str, config):
    """length, batch -> the engine's memory estimate (MiB) for `config` at that shape.

    What it is compared with: on CUDA the tensors alone (torch.cuda.max_memory_allocated counts no
    CUDA context), on the CPU the whole process (its peak RSS).
    """
    import torch

    from engine.models.memory_estimate import estimate_training_memory

    device = "cuda" if torch.cuda.is_available() else "cpu"

    def estimate(length: int, batch: int, checkpointing: bool) -> float:
        shaped = config.with_overrides(
            {
                "data.max_length": length,
                "training.batch_size": batch,
                "training.gradient_checkpointing": checkpointing,
            }
        )
        result = estimate_training_memory(model, shaped, device)
        return (result.tensor_bytes if device == "cuda" else result.total_bytes) / 2**20

    return estimate


def peak_memory() -> dict:
    """CUDA peaks of this process (allocated and reserved, MiB); process RSS on the CPU."""
    import resource

    import torch

    if torch.cuda.is_available():
        return {
            "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
            "peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20,
            "memory_kind": "cuda",
        }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_allocated_mb": rss, "peak_reserved_mb": None, "memory_kind": "process_rss"}


def throughput(marks: list[tuple[int, float, int]], warmup: int) -> dict:
    """Non-padding tokens/s from (step, time, tokens seen) marks, leaving out the first `warmup` steps."""
    if not marks:
        raise RuntimeError("training logged no step")
    warmup = min(warmup, len(marks) - 1)
    if warmup > 0:
        (_, t0, n0), (_, t1, n1) = marks[warmup - 1], marks[-1]
    else:  # one step only: measured from its start
        (_, t1, n1), t0, n0 = marks[-1], marks[0][1] - 1e-9, 0
    return {
        "steps": marks[-1][0],
        "timed_steps": len(marks) - warmup,
        "tokens": n1 - n0,
        "seconds": t1 - t0,
        "tokens_per_second": (n1 - n0) / max(t1 - t0, 1e-9),
    }


# -- the sides ----------------------------------------------------------------------------------


def engine_side(spec: dict, work: Path) -> tuple[dict, object, object, object]:
    """The engine's own run from a config.toml, through the recipe `whetstone-engine train` runs.

    Also the engine's memory estimate for the run and for each length the search tries (the
    calibration of engine.models.memory_estimate against measured peaks).
    """
    from engine.config import load_config
    from engine.runs.events import read_events
    from engine.training.recipe import TrainingRecipe
    from engine.training.trainer import collator

    recipe = TrainingRecipe(load_config(spec["config"]), work / "engine-run")
    result = recipe.run()
    events = read_events(work / "engine-run" / "events.jsonl")
    marks = [(e["step"], e["time"], e["tokens"]) for e in events if e["type"] == "metrics"]
    out = {"state": result.state, **throughput(marks, spec["warmup"])}
    t = recipe.config.training  # what the engine decided for "auto" settings here, and its warnings
    out["choices"] = {
        "attention": t.attention,
        "padding_free": t.padding_free,
        "fused_kernels": t.fused_kernels,
        "gradient_checkpointing": t.gradient_checkpointing,
        "activation_offload": t.activation_offload,
    }
    out["warnings"] = [e["message"] for e in events if e["type"] == "warning"]
    estimate = memory_estimator(spec["model"], recipe.config)
    out["estimate_mb"] = estimate(spec["max_length"], spec["batch"], t.gradient_checkpointing)
    if not t.gradient_checkpointing:
        # "auto" left it off because this run fits easily; at the lengths the search reaches, the
        # engine's "auto" turns it on (it decides from the estimate at the configured max length).
        recipe.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    collate = collator(recipe.config, recipe.tokenizer, recipe.device)
    return out, recipe.trainer, collate, lambda length: estimate(length, 1, True)


def hf_trainer(model, tokenizer, spec: dict, work: Path, marks: list):
    """A typical hand-written QLoRA script's Trainer: template the rows, pad per batch, random order."""
    import torch
    from datasets import load_dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    cuda = torch.cuda.is_available()

    def tokenize(row):
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=spec["max_length"])
        ids = ids["input_ids"]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)}

    cache = str(work / "datasets-cache")
    dataset = load_dataset("json", data_files=spec["data"], split="train", cache_dir=cache)
    dataset = dataset.map(tokenize, remove_columns=["messages"])

    class Clock(TrainerCallback):  # marks at each logged step, as the engine's metrics events
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                marks.append((state.global_step, time.time(), state.num_input_tokens_seen))

    bf16 = cuda and torch.cuda.is_bf16_supported()
    args = TrainingArguments(
        output_dir=str(work / "hf-run"),
        per_device_train_batch_size=spec["batch"],
        max_steps=spec["steps"],
        learning_rate=spec["learning_rate"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        include_num_input_tokens_seen="non_padding",
        seed=spec["seed"],
        use_cpu=not cuda,
        disable_tqdm=True,
        bf16=bf16,
        fp16=cuda and not bf16,
    )
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True)
    trainer = Trainer(
        model=model, args=args, train_dataset=dataset, data_collator=collate, callbacks=[Clock()]
    )
    return trainer, collate


def baseline_side(spec: dict, work: Path) -> tuple[dict, object, object, None]:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    cuda = torch.cuda.is_available()
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )
    device_map = {"": "cuda" if cuda else "cpu"}
    base = AutoModelForCausalLM.from_pretrained(
        spec["model"], quantization_config=quant, dtype=dtype, device_map=device_map
    )
    base = prepare_model_for_kbit_training(
        base, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
    )
    torch.manual_seed(spec["seed"])
    lora = LoraConfig(
        r=spec["rank"],
        lora_alpha=spec["alpha"],
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    marks: list = []
    trainer, collate = hf_trainer(model, tokenizer, spec, work, marks)
    trainer.train()
    return {"state": "done", **throughput(marks, spec["warmup"])}, trainer, collate, None


def unsloth_side(spec: dict, work: Path) -> tuple[dict, object, object, None]:
    """unsloth's FastLanguageModel (its 4-bit loader, LoRA and kernels) under the same Trainer."""
    from unsloth import FastLanguageModel  # imported first: it patches transformers

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=spec["model"], max_seq_length=spec["search"]["cap"], dtype=None, load_in_4bit=True
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=spec["rank"],
        lora_alpha=spec["alpha"],
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        use_gradient_checkpointing="unsloth",
        random_state=spec["seed"],
    )
    marks: list = []
    trainer, collate = hf_trainer(model, tokenizer, spec, work, marks)
    trainer.train()
    return {"state": "done", **throughput(marks, spec["warmup"])}, trainer, collate, None


SIDES = {"engine": engine_side, "baseline": baseline_side, "unsloth": unsloth_side}


# -- the longest max length at batch 1 ----------------------------------------------------------


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free(trainer) -> None:
    import torch

    trainer.model_wrapped.zero_grad(set_to_none=True)
    trainer.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def probe(trainer, collate, length: int, steps: int, tokens: int) -> tuple[bool, float, float | None]:
    """`steps` training steps on one row of `length` tokens: (fits, seconds, peak MiB on CUDA)."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda:  # this probe's own peak (the CPU's RSS only ever grows: no per-probe peak there)
        torch.cuda.reset_peak_memory_stats()
    rng = random.Random(length)
    ids = [rng.randrange(4, tokens) for _ in range(length)]
    start = time.perf_counter()
    failure = None
    try:
        for _ in range(steps):
            batch = collate([{"input_ids": ids, "attention_mask": [1] * length, "labels": list(ids)}])
            trainer.training_step(trainer.model_wrapped, batch)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            batch = None
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is an answer; the rest is re-raised
        failure = exc if not _is_oom(exc) else None
        fits = False
    else:
        fits = True
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    batch = None
    _free(trainer)  # after the except block: its traceback held the step's tensors
    if failure is not None:
        raise failure
    return fits, seconds, peak


def longest_fit(trainer, collate, search: dict, tokens: int, estimate=None) -> dict:
    """Double from `start` until out of memory (or `cap`, or the deadline), then bisect a few times.

    Each probe is [length, fits, seconds, peak MiB or None, the engine's estimate MiB or None].
    """
    start, cap, granule = search["start"], search["cap"], search["granule"]
    deadline, steps = search["deadline"], search["probe_steps"]
    probes: list[list] = []
    fit, oom, bound = None, None, "oom"
    last = None  # (length, seconds) of the latest probe that fitted, to predict the next one

    def affordable(length: int) -> bool:
        guess = 0.0 if last is None else last[1] * (length / last[0]) ** 1.5
        return time.time() + guess < deadline

    def tried(length: int) -> bool:
        ok, seconds, peak = probe(trainer, collate, length, steps, tokens)
        guess = round(estimate(length), 1) if estimate else None
        probes.append([length, ok, round(seconds, 2), None if peak is None else round(peak, 1), guess])
        return ok, seconds

    length = start
    while True:
        if not affordable(length):
            bound = "time"
            break
        ok, seconds = tried(length)
        if not ok:
            oom = length
            if fit is None and length > granule:  # even the start failed: halve down
                length = max(granule, length // 2 // granule * granule)
                continue
            break
        fit, last = length, (length, seconds)
        if oom is not None or length >= cap:
            bound = "oom" if oom is not None else "cap"
            break
        length = min(cap, length * 2)
    for _ in range(search["bisect"]):
        if fit is None or oom is None or bound != "oom":
            break
        mid = (fit + oom) // 2 // granule * granule
        if mid <= fit or not affordable(mid):
            break
        ok, seconds = tried(mid)
        if ok:
            fit, last = mid, (mid, seconds)
        else:
            oom = mid
    return {"longest": fit, "oom_at": oom, "bound": bound, "probes": probes}


def run_side(side: str, spec_path: str) -> None:
    """The child process: train, report, search, report again."""
    spec = json.loads(Path(spec_path).read_text())
    import engine  # noqa: F401  (the offline environment first: nothing may reach the network)

    if side == "unsloth":
        import os

        os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
        import unsloth  # noqa: F401  (before transformers, as unsloth requires; engine imports neither)

    work = Path(spec["work"]) / side
    work.mkdir(parents=True, exist_ok=True)
    result, trainer, collate, estimate = SIDES[side](spec, work)
    result.update(device_info())
    result.update(peak_memory())  # the training run's peaks, before the search changes them
    report(result)
    if spec["search"]["deadline"] > time.time():
        result["search"] = longest_fit(trainer, collate, spec["search"], spec["token_range"], estimate)
    else:
        result["search"] = {"longest": None, "oom_at": None, "bound": "time", "probes": []}
    report(result)
