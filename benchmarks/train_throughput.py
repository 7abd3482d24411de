"""Training throughput and peak memory: Whetstone's engine vs a plain transformers Trainer + peft.

Both train the same 4-bit model with the same LoRA settings, data, batch size, max length and
length of run (one epoch over the rows unless --steps is given), each in its own process (so peak
memory is its own). Prints tokens/s (non-padding tokens per second of training), peak memory and
the ratio engine / baseline. "engine" is the engine with its default settings (padding-free
batches "auto": padded on the CPU; training.cpu_weight_cache "auto": the 4-bit weights dequantized once on
the CPU; training.gradient_checkpointing "auto": off where the run fits in half the free memory
without it), "engine-padded" the same with training.padding_free = false, "engine-uncached" with
training.cpu_weight_cache = false (bitsandbytes dequantizing every step, as the baseline does),
"engine-checkpointed" with gradient checkpointing on, as the baseline has it (peft's
prepare_model_for_kbit_training turns it on by default, and most QLoRA scripts keep it).
Like the baseline, the engine trains every row and evaluates nothing (data.validation_ratio = 0).

    .venv/bin/python benchmarks/train_throughput.py [--model DIR] [--steps N] [--rows N] [--variants ...]

Default model: the demo model (SmolLM2-135M-Instruct). On CUDA it uses the GPU; on CPU, the
bitsandbytes 4-bit CPU path. Peak memory is CUDA allocated memory on a GPU, process RSS on CPU.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = (
    "model data token train adapter weight layer loss batch step rank alpha quant memory "
    "offline desktop stone sharp blade edge grind polish fine tune answer question"
).split()


def make_dataset(path: Path, rows: int, seed: int = 0) -> None:
    """Conversations of varied length (short to ~250 tokens), like real chat data."""
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for _ in range(rows):
            n_user, n_reply = rng.randint(4, 40), rng.choice([rng.randint(3, 20), rng.randint(40, 160)])
            user = " ".join(rng.choice(WORDS) for _ in range(n_user)) + "?"
            reply = " ".join(rng.choice(WORDS) for _ in range(n_reply)) + "."
            row = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}
            handle.write(json.dumps(row) + "\n")


VARIANTS = ("baseline", "engine", "engine-padded", "engine-uncached", "engine-checkpointed")
# gradient_checkpointing: the baseline's (and engine-checkpointed's); the engine's other variants use "auto".
SETTINGS = dict(
    rank=16, alpha=32, batch_size=4, max_length=256, learning_rate=2e-4, seed=0, gradient_checkpointing=True
)


def run_engine_padded(model: str, data: str, steps: int, out: Path) -> dict:
    return run_engine(model, data, steps, out, padding_free=False)


def run_engine_uncached(model: str, data: str, steps: int, out: Path) -> dict:
    return run_engine(model, data, steps, out, cpu_weight_cache=False)


def run_engine_checkpointed(model: str, data: str, steps: int, out: Path) -> dict:
    return run_engine(model, data, steps, out, gradient_checkpointing=SETTINGS["gradient_checkpointing"])


def run_engine(
    model: str,
    data: str,
    steps: int,
    out: Path,
    padding_free: bool | str = "auto",
    cpu_weight_cache: bool | str = "auto",
    gradient_checkpointing: bool | str = "auto",
) -> dict:
    from engine.config import RunConfig
    from engine.runs.events import read_events
    from engine.training.recipe import train

    s = SETTINGS
    config = RunConfig().with_overrides(
        {
            "model.path": model,
            "data.path": data,
            "data.max_length": s["max_length"],
            "data.validation_ratio": 0.0,  # the baseline holds nothing out and never evaluates
            "lora.rank": s["rank"],
            "lora.alpha": float(s["alpha"]),
            "lora.dropout": 0.0,
            "training.max_steps": steps,  # 0: one epoch
            "training.epochs": 1.0,
            "training.batch_size": s["batch_size"],
            "training.save_every": 10**6,
            "training.learning_rate": s["learning_rate"],
            "training.seed": s["seed"],
            "training.gradient_checkpointing": gradient_checkpointing,
            "training.padding_free": padding_free,
            "training.cpu_weight_cache": cpu_weight_cache,
        }
    )
    train(config, out / "engine-run")
    events = read_events(out / "engine-run" / "events.jsonl")
    start = next(e["time"] for e in events if e["type"] == "status" and e["state"] == "training")
    metrics = [e for e in events if e["type"] == "metrics"]
    [setup] = [e for e in events if e["type"] == "model"]
    return {
        "tokens": metrics[-1]["tokens"],
        "steps": metrics[-1]["step"],
        "seconds": metrics[-1]["time"] - start,
        "loss_last": metrics[-1]["loss"],
        "padding_free": setup.get("padding_free"),
        "checkpointing": next(
            (e["gradient_checkpointing"] for e in events if "gradient_checkpointing" in e),
            gradient_checkpointing,
        ),
    }


def run_baseline(model: str, data: str, steps: int, out: Path) -> dict:
    """What a typical hand-written QLoRA script does: template the rows, pad per batch, random order."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    s = SETTINGS
    cuda = torch.cuda.is_available()
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model)
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )
    base = AutoModelForCausalLM.from_pretrained(
        model, quantization_config=quant, dtype=dtype, device_map={"": "cuda" if cuda else "cpu"}
    )
    base = prepare_model_for_kbit_training(
        base,
        use_gradient_checkpointing=s["gradient_checkpointing"],
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    torch.manual_seed(s["seed"])
    peft_model = get_peft_model(
        base,
        LoraConfig(
            r=s["rank"],
            lora_alpha=s["alpha"],
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )

    def tokenize(row):
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=s["max_length"])[
            "input_ids"
        ]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)}

    dataset = load_dataset("json", data_files=data, split="train").map(tokenize, remove_columns=["messages"])
    clock = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock["start"] = time.time()

        def on_step_end(self, args, state, control, **kwargs):
            clock["end"], clock["tokens"] = time.time(), state.num_input_tokens_seen
            clock["steps"] = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                clock["loss_last"] = logs["loss"]

    args = TrainingArguments(
        output_dir=str(out / "baseline-run"),
        per_device_train_batch_size=s["batch_size"],
        max_steps=steps if steps > 0 else -1,
        num_train_epochs=1,
        learning_rate=s["learning_rate"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        gradient_checkpointing=s["gradient_checkpointing"],
        gradient_checkpointing_kwargs={"use_reentrant": False},
        include_num_input_tokens_seen="non_padding",
        seed=s["seed"],
        use_cpu=not cuda,
        disable_tqdm=True,
        bf16=cuda and dtype == torch.bfloat16,
        fp16=cuda and dtype == torch.float16,
    )
    trainer = Trainer(
        model=peft_model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
        callbacks=[Clock()],
    )
    trainer.train()
    return {
        "tokens": clock["tokens"],
        "steps": clock["steps"],
        "seconds": clock["end"] - clock["start"],
        "loss_last": clock["loss_last"],
        "checkpointing": s["gradient_checkpointing"],
    }


def peak_memory_mb() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(variant: str, model: str, data: str, steps: int) -> None:
    import engine  # noqa: F401  (offline environment)

    with tempfile.TemporaryDirectory() as tmp:
        runner = {
            "engine": run_engine,
            "engine-padded": run_engine_padded,
            "engine-uncached": run_engine_uncached,
            "engine-checkpointed": run_engine_checkpointed,
            "baseline": run_baseline,
        }[variant]
        result = runner(model, data, steps, Path(tmp))
    result["peak_memory_mb"] = peak_memory_mb()
    result["tokens_per_second"] = result["tokens"] / result["seconds"]
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the demo model)")
    parser.add_argument("--steps", type=int, default=0, help="optimizer steps (default 0: one epoch)")
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}"
    )
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child(args.child, args.model, args.data, args.steps)
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "baseline" not in variants or not set(variants) <= set(VARIANTS):
        parser.error(f"--variants: baseline and any of {', '.join(VARIANTS[1:])}")
    variants = ["baseline"] + [v for v in dict.fromkeys(variants) if v != "baseline"]

    if args.model is None:
        from engine.models.demo import ensure_demo_model

        args.model = str(ensure_demo_model())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.jsonl"
        make_dataset(data, args.rows)
        results: dict[str, list[dict]] = {variant: [] for variant in variants}
        for _ in range(args.repeats):
            for variant in variants:  # alternate, so drift hits every variant
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        variant,
                        "--model",
                        args.model,
                        "--data",
                        str(data),
                        "--steps",
                        str(args.steps),
                    ],
                    capture_output=True,
                    text=True,
                )
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if proc.returncode or line is None:
                    sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
                results[variant].append(json.loads(line[7:]))

    def best(variant, key):
        return (
            max(r[key] for r in results[variant])
            if key == "tokens_per_second"
            else min(r[key] for r in results[variant])
        )

    length = f"{args.steps} steps" if args.steps > 0 else f"one epoch of {args.rows} rows"
    print(
        f"model {args.model}, {length}, batch {SETTINGS['batch_size']}, max length "
        f"{SETTINGS['max_length']}, LoRA r{SETTINGS['rank']} all-linear, {args.repeats} repeat(s)"
    )
    for variant in variants:
        r = results[variant]
        packed = {True: "   packed", False: "   padded"}.get(r[0].get("padding_free"), "")
        packed += {True: ", checkpointed", False: ", not checkpointed"}.get(r[0].get("checkpointing"), "")
        print(
            f"{variant:14s} tokens/s {best(variant, 'tokens_per_second'):8.1f}   peak memory "
            f"{best(variant, 'peak_memory_mb'):8.0f} MB   tokens {r[0]['tokens']}   steps {r[0]['steps']}   "
            f"time {min(x['seconds'] for x in r):.1f} s   last loss {r[0]['loss_last']:.4f}{packed}"
        )
    for variant in variants[1:]:
        ratio = best(variant, "tokens_per_second") / best("baseline", "tokens_per_second")
        mem = best(variant, "peak_memory_mb") / best("baseline", "peak_memory_mb")
        print(f"ratio {variant}/baseline: tokens/s {ratio:.2f}x, peak memory {mem:.2f}x")


if __name__ == "__main__":
    main()
