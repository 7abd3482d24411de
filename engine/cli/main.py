"""`whetstone-engine`: the headless command line, and the contract the GUI drives.

Exit codes and the `error: ...` line: see engine.cli.protocol (the app imports it too).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

import engine  # noqa: F401  (offline environment first)
from engine.chat import server as chat_server
from engine.cli import cluster as cli_cluster
from engine.cli import eval as cli_eval
from engine.cli import export as cli_export
from engine.cli import fit as cli_fit
from engine.cli import models as cli_models
from engine.cli import runs as cli_runs
from engine.cli import workspace as cli_workspace
from engine.cli.protocol import (
    EXIT_BAD_INPUT,
    EXIT_DONE,
    EXIT_INTERNAL,
    EXIT_STOPPED,
    error_line,
    internal_error_line,
)
from engine.config import RunConfig, load_config
from engine.errors import UserError, is_gpu_out_of_memory, is_out_of_memory
from engine.util.files import whetstone_home

# CLI flag -> dotted config field
TRAIN_OVERRIDES = {
    "model": "model.path",
    "data": "data.path",
    "validation_data": "data.validation_path",
    "format": "data.format",
    "max_steps": "training.max_steps",
    "epochs": "training.epochs",
    "learning_rate": "training.learning_rate",
    "lora_rank": "lora.rank",
    "batch_size": "training.batch_size",
    "max_length": "data.max_length",
    "eval_every": "training.eval_every",
    "save_every": "training.save_every",
    "seed": "training.seed",
    "validation_ratio": "data.validation_ratio",
    "replay_ratio": "data.replay_ratio",
    "early_stopping_patience": "training.early_stopping_patience",
    "early_stopping_min_delta": "training.early_stopping_min_delta",
    "final_adapter": "training.final_adapter",
    "neftune_alpha": "training.neftune_alpha",
    "method": "training.method",
    "init_adapter": "training.init_adapter",
    "beta": "training.preference_beta",
    "dpo_loss": "training.dpo_loss",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        sys.stderr.write(error_line(f"{message} (see `{self.prog} --help`)") + "\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _ratio(text: str) -> float | str:
    """--validation-ratio: "auto" or a number (the config check says what range)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected "auto" or a number, not {text!r}') from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="whetstone-engine", description="Whetstone's headless QLoRA engine.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="fine-tune a model with QLoRA into a run folder")
    train.add_argument("--model", help="local Hugging Face model folder")
    train.add_argument(
        "--data", help="training data: .jsonl .json .csv .tsv .parquet .txt or a save_to_disk folder"
    )
    train.add_argument("--validation-data", help="separate validation file")
    train.add_argument(
        "--format", help="row shape: auto, messages, sharegpt, alpaca, prompt_completion, text"
    )
    train.add_argument("--output", required=True, help="run folder to create (or to resume with --resume)")
    train.add_argument("--config", help="TOML config file; flags override it")
    train.add_argument(
        "--project", help="Whetstone project folder: use its settings (project.toml); flags override them"
    )
    train.add_argument("--max-steps", type=int)
    train.add_argument("--epochs", type=float)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--lora-rank", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--max-length", type=int)
    train.add_argument("--eval-every", type=int)
    train.add_argument("--save-every", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument(
        "--validation-ratio",
        type=_ratio,
        help='share of the training rows held out for validation: "auto" (default) or 0 to 0.5 (0 = off)',
    )
    train.add_argument(
        "--replay-ratio",
        type=float,
        help="share of the training mix made of the base model's own answers to general prompts "
        "(replay against forgetting; 0 = off)",
    )
    train.add_argument(
        "--early-stopping-patience",
        type=int,
        metavar="N",
        help="stop after N evaluations without a lower validation loss (0 = off)",
    )
    train.add_argument(
        "--early-stopping-min-delta",
        type=float,
        metavar="X",
        help="how much lower the validation loss must be to count as an improvement",
    )
    train.add_argument(
        "--final-adapter", help="best (lowest validation loss, the default) or last: which becomes adapter/"
    )
    train.add_argument("--neftune-alpha", type=float, help="NEFTune embedding noise (0 = off, 5 is typical)")
    train.add_argument(
        "--method", help="sft (default), dpo, orpo, kto (preference data), full or prompt_tuning"
    )
    train.add_argument(
        "--init-adapter",
        metavar="RUN_DIR|ADAPTER_DIR",
        help="start from this adapter (e.g. dpo on top of an sft run)",
    )
    train.add_argument(
        "--beta", type=float, help="dpo/kto: closeness to the reference; orpo: preference weight"
    )
    train.add_argument("--dpo-loss", help="sigmoid (default), ipo, sigmoid_norm, hinge or robust")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last complete checkpoint "
        "(with a larger --max-steps: train a finished run further)",
    )
    train.add_argument(
        "--resume-from",
        type=int,
        metavar="STEP",
        help="with --resume: continue from the complete checkpoint of this step; later ones are removed",
    )
    train.add_argument("--quiet", action="store_true", help="print only the final line")
    train.add_argument(
        "--name", help='the run\'s display name (e.g. "Quick test · lr 3e-4"); the folder keeps its name'
    )

    gen = sub.add_parser("generate", help="reply to a prompt (chat template applied, greedy)")
    gen.add_argument("--model", required=True, help="local Hugging Face model folder")
    gen.add_argument("--adapter", help="adapter folder, checkpoint folder or run folder")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--system", help="system prompt")
    gen.add_argument("--max-new-tokens", type=int, default=256)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")

    data = sub.add_parser("data", help="inspect data files").add_subparsers(
        dest="data_command", required=True, parser_class=_Parser
    )
    check = data.add_parser(
        "check", help="report a data file's shape, problems and (with --model) token lengths"
    )
    check.add_argument("file")
    check.add_argument("--model", help="model folder whose tokenizer and chat template render the rows")
    check.add_argument("--max-length", type=int, default=1024)
    check.add_argument(
        "--format", default="auto", help="auto, messages, sharegpt, alpaca, prompt_completion, text"
    )
    check.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=NAME",
        help="your column for a standard field, e.g. --column prompt=question (repeatable)",
    )
    check.add_argument("--text-mode", default="blank_lines", choices=("blank_lines", "file"))
    check.add_argument("--json", action="store_true", help="print one JSON object")

    job = data.add_parser("review-job", help="(used by the app) review the rows handed over in a job folder")
    job.add_argument("folder")

    sub.add_parser("demo-model", help="print the demo model folder, converting it on first use")

    demo = sub.add_parser("demo", help="fine-tune the demo model on the demo data and compare answers")
    demo.add_argument("--output", help="run folder (default: a new folder under the data directory)")
    demo.add_argument("--max-steps", type=int, help="default: resources/demo/demo.toml's")

    cli_models.add_parser(sub)
    cli_export.add_parser(sub)
    cli_eval.add_parser(sub)
    cli_fit.add_parser(sub)
    cli_cluster.add_parser(sub)
    chat_server.add_parser(sub)
    cli_workspace.add_parsers(sub)
    cli_runs.add_parser(sub)
    consent = "let the model folder's own Python code run for this command (only if you trust it)"
    for command in (train, gen, check, sub.choices["export"], sub.choices["fit-check"]):
        command.add_argument("--allow-remote-code", action="store_true", help=consent)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2): return, so callers in-process get the code
        return int(exc.code or 0)
    _quiet_libraries(
        light=args.command in LIGHT_COMMANDS and getattr(args, "models_command", "") != "import-gguf"
    )
    run_dir = Path(args.output) if getattr(args, "output", None) else None
    if getattr(args, "allow_remote_code", False):  # consent from the user, not from a config file
        from engine.models.library import allow_remote_code_in_this_process

        allow_remote_code_in_this_process()
    try:
        handler = {
            "train": cmd_train,
            "generate": cmd_generate,
            "demo-model": cmd_demo_model,
            "demo": cmd_demo,
            "data": cmd_data,
            "models": cli_models.run,
            "fit-check": cli_fit.run,
            "chat-server": chat_server.run,
            "cluster-bundle": cli_cluster.run,
            "export": cli_export.run,
            "eval": cli_eval.run,
            "diagnostics": cli_workspace.run,
            "project": cli_workspace.run,
            "runs": cli_runs.run,
        }
        return handler[args.command](args)
    except UserError as exc:
        sys.stderr.write(error_line(exc.one_line()) + "\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("stopped.\n")
        return EXIT_STOPPED
    except Exception as exc:
        if is_out_of_memory(exc):  # not a bug: what this command loads does not fit
            sys.stderr.write(error_line(out_of_memory_words(args.command, exc)) + "\n")
            return EXIT_BAD_INPUT
        details = traceback.format_exc()
        log_dir = run_dir if run_dir and run_dir.is_dir() else whetstone_home() / "logs"
        log_file = log_dir / "engine.log"
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            with open(log_file, "a", encoding="utf-8") as handle:
                handle.write(f"--- {time.ctime()}\n{details}\n")
        except OSError as failed:  # a full disk fails the log too: show the traceback, never a second one
            sys.stderr.write(details)
            log_file = f"the lines above; {log_file} could not be written: {failed.strerror or failed}"
        sys.stderr.write(internal_error_line(exc, log_file) + "\n")
        return EXIT_INTERNAL


def out_of_memory_words(command: str, exc: BaseException) -> str:
    """The error line of a command that ran out of memory (train says more, in its own words)."""
    where = "GPU memory" if is_gpu_out_of_memory(exc) else "RAM"
    return (
        f"Out of memory: what `{command}` loads does not fit in the {where} free now. Close other programs "
        "that use it (nvidia-smi lists the GPU's), pick a smaller model, or run on the CPU "
        "(CUDA_VISIBLE_DEVICES= hides the GPU)."
    )


# Commands that never load a model: they skip importing transformers (~2 s) just to quiet it.
# (`export` loads models, so it is deliberately not listed.)
LIGHT_COMMANDS = ("project", "diagnostics", "models", "cluster-bundle", "runs")


def _quiet_libraries(light: bool = False) -> None:
    import logging
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    if light:
        return
    from transformers.utils import logging as hf_logging  # light: does not import torch

    hf_logging.disable_progress_bar()  # our events and lines are the progress report
    hf_logging.set_verbosity_error()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def resolve_train_config(args: argparse.Namespace) -> RunConfig:
    run_dir = Path(args.output)
    if args.config:
        config = load_config(args.config)
    elif args.project:
        from engine.workspace import load_project_config

        config = load_project_config(args.project)
    elif args.resume and (run_dir / "config.toml").is_file():
        config = load_config(run_dir / "config.toml")
    else:
        config = RunConfig()
    overrides = {
        field: getattr(args, flag)
        for flag, field in TRAIN_OVERRIDES.items()
        if getattr(args, flag) is not None
    }
    if "data.path" in overrides:
        overrides["data.path"] = str(Path(overrides["data.path"]).expanduser().resolve())
    return config.with_overrides(overrides)


def print_event(event: dict) -> None:
    from engine.runs.text import event_text

    if event.get("type") == "error":
        return  # printed once by main() as the `error:` line
    text = event_text(event)
    if text is not None:
        print(text, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from engine.runs.names import check_run_name
    from engine.training.distributed import ranks_from_env
    from engine.training.recipe import train

    config = resolve_train_config(args)
    if args.resume_from is not None and not args.resume:
        raise UserError("--resume-from needs --resume.", "Add --resume.")
    ranks = ranks_from_env()
    main_rank = ranks.is_main  # under torchrun, rank 0 speaks for all
    name = None if args.name is None else check_run_name(args.name)  # a bad name: exit 2, nothing written
    result = train(
        config,
        args.output,
        resume=args.resume,
        name=name,
        echo=None if args.quiet or not main_rank else print_event,
        resume_step=args.resume_from,
    )
    if result.state == "stopped":
        if main_rank:
            print(
                f"Stopped at step {result.step}; resume with: "
                f"whetstone-engine train --output {args.output} --resume"
            )
        # torchrun takes any other exit code for a crash and kills the other ranks mid-write; the
        # run's events say "stopped", and the cluster bundle's scripts turn that back into exit 3.
        return EXIT_DONE if ranks.distributed else EXIT_STOPPED
    if main_rank:
        print(f"{'Model' if result.adapter.name == 'model' else 'Adapter'} written to {result.adapter}")
    return EXIT_DONE


def cmd_generate(args: argparse.Namespace) -> int:
    from engine.chat.loading import GenerationSettings, load_for_chat, stream_chat

    model, tokenizer = load_for_chat(args.model, args.adapter)
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": args.prompt})
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    for chunk in stream_chat(model, tokenizer, messages, settings):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return EXIT_DONE


def cmd_data(args: argparse.Namespace) -> int:
    import json

    if args.data_command == "review-job":
        from engine.data.review_job import run_job

        def progress(done: int, total: int) -> None:
            print(json.dumps({"type": "progress", "done": done, "total": total}), flush=True)

        run_job(Path(args.folder), progress)
        return EXIT_DONE

    from engine.config import DataConfig
    from engine.data.check import check_data

    columns = {}
    for item in args.column:
        field, _, name = item.partition("=")
        columns[field.strip()] = name.strip()
    # The same validation as a training config: one line naming the field and what is allowed.
    DataConfig(format=args.format, columns=columns, max_length=args.max_length, text_mode=args.text_mode)
    tokenizer = None
    if args.model:
        from engine.config import ModelConfig
        from engine.models.loading import load_tokenizer

        tokenizer = load_tokenizer(ModelConfig(path=args.model))
    report = check_data(
        args.file, args.format, columns, args.text_mode, tokenizer, args.max_length, allow_empty=True
    )
    if report.valid_rows == 0:  # --json still prints its report: the problems are what the user needs
        if args.json:
            print(json.dumps(report.as_dict(), ensure_ascii=False))
        counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.skipped().items())
        raise UserError(
            f"{args.file} has no usable rows ({counts or 'none read'}). First problem: "
            f"{report.first_problem() or 'none listed'}.",
            "Fix the rows listed in the report above."
            if args.json
            else "Run again with --json to list every problem.",
            "data",
        )
    print(json.dumps(report.as_dict(), ensure_ascii=False) if args.json else report.human())
    return EXIT_DONE


def cmd_demo_model(args: argparse.Namespace) -> int:
    from engine.models.demo import ensure_demo_model

    print(ensure_demo_model(progress=lambda msg: print(msg, file=sys.stderr)))
    return EXIT_DONE


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.chat.loading import GenerationSettings, generate_text, load_for_chat
    from engine.models.demo import (
        DEMO_PROMPTS,
        demo_dataset_path,
        ensure_demo_model,
        load_demo_config,
    )
    from engine.training.recipe import train

    model_dir = ensure_demo_model()
    run_dir = (
        Path(args.output) if args.output else whetstone_home() / "runs" / time.strftime("demo-%Y%m%d-%H%M%S")
    )
    overrides = {"model.path": str(model_dir), "data.path": str(demo_dataset_path())}
    if args.max_steps is not None:
        overrides["training.max_steps"] = args.max_steps
    config = load_demo_config().with_overrides(overrides)
    print(f"Fine-tuning {model_dir.name} on {demo_dataset_path().name} into {run_dir}")
    result = train(config, run_dir, echo=print_event)
    if result.state != "done":
        return EXIT_STOPPED
    base, base_tok = load_for_chat(str(model_dir))
    tuned, tuned_tok = load_for_chat(str(model_dir), str(result.adapter))
    settings = GenerationSettings(max_new_tokens=60)  # the base model rambles; 60 tokens show enough
    for prompt in DEMO_PROMPTS:
        print(f"\n> {prompt}")
        print(f"  base : {generate_text(base, base_tok, prompt, settings).strip()}")
        print(f"  tuned: {generate_text(tuned, tuned_tok, prompt, settings).strip()}")
    print(f"\nAdapter: {result.adapter}")
    return EXIT_DONE


def run_as_program() -> None:
    """`whetstone-engine` and `python -m engine.cli[.main]`: run the command and exit with its code."""
    _restart_with_tcmalloc()
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        # A rank of a torchrun/Slurm launch has left its process group and written everything. Skip
        # the interpreter's teardown: gloo's worker threads can still hold tensors then, and freeing
        # them while Python finalizes aborts the process now and then ("terminate called without an
        # active exception", SIGABRT), which torchrun calls a crash and answers by killing the others.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


def _restart_with_tcmalloc() -> None:
    """Start this process again, once, under tcmalloc where engine.util.cpu_allocator says so.

    The allocator is picked when a process starts; the app's children get it in their environment,
    a command typed in a shell gets it here. Light commands (no torch) are left as they are.
    """
    from engine.util.cpu_allocator import with_tcmalloc

    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    if getattr(sys, "frozen", False) or command in LIGHT_COMMANDS:
        return
    env = with_tcmalloc(dict(os.environ))
    if env.get("LD_PRELOAD") == os.environ.get("LD_PRELOAD"):
        return  # nothing to add: not wanted here, or already under it
    try:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        return  # cannot start again (exotic interpreter): run on with the system allocator


if __name__ == "__main__":
    run_as_program()
