"""An importance matrix from the run's own rows, as llama.cpp's `llama-imatrix` collects one.

For every linear layer whose weight goes into the GGUF, the squared activations entering it are
summed per input column over every real token (padding excluded) and divided by the token count:
the mean of x_j^2, which the K-quant search uses to weigh each column's rounding error. The
token embedding is a lookup (no imatrix); lm_head is included when it is not tied to it.

The rows are the run's own data rendered exactly as training rendered them (validation rows
first, then training rows), up to a row count and a token budget. A matrix can be kept in an
`.npz` file (see `save_imatrix`) and reused with `--imatrix-file`.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from engine.errors import Cancelled, ConfigError, ModelError, UserError
from engine.export.merge import ExportSource

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]

DEFAULT_ROWS = 128
DEFAULT_TOKENS = 32768  # about llama.cpp's usual 64 chunks of 512 tokens; seconds on a GPU
BATCH_TOKENS = 4096  # padded tokens per forward pass: bounded activation memory
FORMAT = "whetstone-imatrix"
_META_KEY = "__meta__"


def imatrix_rows(
    source: ExportSource, rows: int = DEFAULT_ROWS, max_tokens: int = DEFAULT_TOKENS
) -> list[list[int]]:
    """The token ids of up to `rows` of the run's rows (validation first), within `max_tokens`.

    Cheap next to the merge, so the CLI calls it first: a run whose data is gone fails in seconds.
    """
    from engine.data.prepare import prepare_data
    from engine.models.loading import load_tokenizer

    if rows < 1 or max_tokens < 1:
        raise ConfigError(f"--imatrix-rows and the token budget must be >= 1 (got {rows}, {max_tokens}).")
    if source.config is None or not source.config.data.path:
        raise ConfigError(
            f"The importance matrix needs the run's data, but {source.adapter_dir} has no run around it.",
            "Export the run folder, or export without --imatrix.",
        )
    tokenizer = load_tokenizer(source.model_config())  # the tokenizer training used
    try:
        prepared = prepare_data(tokenizer, source.config.data)
    except UserError as exc:
        raise ConfigError(
            f"The importance matrix needs the run's data, which cannot be used: {exc.one_line()}",
            "Put the data back where the run found it, or export without --imatrix.",
        ) from None
    out: list[list[int]] = []
    budget = max_tokens
    for row in [*prepared.validation, *prepared.train][:rows]:
        if budget <= 0:
            break
        out.append(list(row["input_ids"][:budget]))
        budget -= len(out[-1])
    return out


def linear_layers(model) -> dict[str, object]:
    """`<module name>.weight` -> nn.Linear for every matrix product that goes into the GGUF."""
    import torch

    table = getattr(model.get_input_embeddings(), "weight", None)
    layers = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if table is not None and module.weight is table:
            continue  # a tied lm_head is the embedding table in the GGUF: a lookup, no imatrix
        layers[f"{name}.weight"] = module
    return layers


def accumulate(
    model,
    sequences: list[list[int]],
    pad_id: int = 0,
    *,
    batch_tokens: int = BATCH_TOKENS,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """(mean of x^2 per input column for every linear layer, tokens seen) over `sequences`.

    Sums are kept in float64; padding positions never enter them. lm_head's input is the final
    hidden state, taken from the decoder so that no vocabulary-sized logits are ever computed.
    """
    import torch

    head = model.get_output_embeddings()
    decoder = model.get_decoder()  # lm_head (the only other linear) is fed from its output
    inside = {id(m) for m in decoder.modules()}
    layers = {k: m for k, m in linear_layers(model).items() if id(m) in inside or m is head}
    head_key = next((key for key, module in layers.items() if module is head), None)
    device = next(model.parameters()).device
    sums = {key: torch.zeros(m.in_features, dtype=torch.float64, device=device) for key, m in layers.items()}
    mask_now: list = [None]

    def add(key: str, x) -> None:
        # mask @ x^2: the padding rows weigh 0, and one matrix-vector product is ~6x faster on a CPU
        # than a boolean gather and a column sum. A batch's sum is float32, the total float64.
        sums[key] += (mask_now[0] @ x.reshape(-1, x.shape[-1]).float().square()).double()

    hooks = [
        module.register_forward_pre_hook(lambda _m, args, key=key: add(key, args[0]))
        for key, module in layers.items()
        if key != head_key
    ]
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))  # little padding per batch
    total = sum(len(s) for s in sequences) or 1
    tokens = 0
    try:
        with torch.no_grad():
            for batch in _batches([sequences[i] for i in order], batch_tokens):
                if cancel is not None and cancel():
                    raise Cancelled("importance matrix cancelled")
                ids, mask = _pad(batch, pad_id, device)
                mask_now[0] = mask.reshape(-1).float()
                out = decoder(input_ids=ids, attention_mask=mask)
                if head_key:
                    add(head_key, out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0])
                tokens += int(mask.sum())
                if progress is not None:
                    progress(tokens / total, f"Importance matrix: {tokens} of {total} tokens")
    finally:
        for hook in hooks:
            hook.remove()
    if tokens == 0:
        raise ConfigError("The importance matrix got no tokens: the run's rows are empty.")
    bad = [key for key, s in sums.items() if not bool(torch.isfinite(s).all())]
    if bad:  # llama-imatrix stops here too: such a matrix would steer every rounding wrong
        raise ModelError(
            f"The merged model gives non-finite activations at {bad[0]}.",
            "Export without --imatrix, and check the model's answers in the chat.",
        )
    return {key: (s / tokens).float().cpu().numpy() for key, s in sums.items()}, tokens


def _batches(sequences: list[list[int]], batch_tokens: int):
    batch: list[list[int]] = []
    for seq in sequences:  # longest first, so the first row of a batch sets its padded length
        if batch and (len(batch) + 1) * len(batch[0]) > batch_tokens:
            yield batch
            batch = []
        batch.append(seq)
    if batch:
        yield batch


def _pad(batch: list[list[int]], pad_id: int, device):
    import torch

    longest = max(len(s) for s in batch)
    ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, seq in enumerate(batch):  # right padding: positions of real tokens start at 0
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def collect_imatrix(
    model_dir: str | Path,
    sequences: list[list[int]],
    *,
    trust_remote_code: bool = False,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> dict[str, np.ndarray]:
    """The importance matrix of the (merged, 16-bit) model in `model_dir` on `sequences`.

    Keys are Hugging Face weight names (`model.layers.0.mlp.down_proj.weight`); values float32
    arrays of the weight's column count. The model runs on CUDA when there is one (bf16), else fp32.
    """
    from transformers import AutoModelForCausalLM

    from engine.models.loading import pick_device, resolve_compute_dtype

    report = progress or (lambda _f, _m: None)
    device = pick_device()
    report(0.0, "Importance matrix: loading the merged model")
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir),
        dtype=resolve_compute_dtype("auto", device),
        device_map={"": device},
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    ).eval()
    pad_id = model.config.pad_token_id if isinstance(model.config.pad_token_id, int) else 0
    try:
        matrix, tokens = accumulate(
            model, sequences, pad_id, progress=lambda f, m: report(0.1 + 0.9 * f, m), cancel=cancel
        )
    finally:
        del model
    report(
        1.0,
        f"Importance matrix from {len(sequences)} rows, {tokens} tokens "
        f"({time.perf_counter() - started:.1f} s)",
    )
    return matrix


def save_imatrix(path: str | Path, matrix: Mapping[str, np.ndarray], **info) -> Path:
    """Write `matrix` as an uncompressed .npz: one float32 array per weight name (the mean of x^2
    per input column), plus `__meta__`, a JSON string {"format": "whetstone-imatrix", **info}."""
    from engine.util.files import atomic_write_bytes

    buffer = io.BytesIO()
    arrays = {key: np.asarray(value, dtype=np.float32) for key, value in matrix.items()}
    np.savez(buffer, **arrays, **{_META_KEY: np.array(json.dumps({"format": FORMAT, **info}))})
    path = Path(path).expanduser()
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_imatrix(path: str | Path, model_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Read a file written by `save_imatrix`; with `model_dir`, check it fits that model's weights."""
    path = Path(path).expanduser()
    if path.is_file() and not zipfile.is_zipfile(path):  # np.load would talk of pickles
        raise ConfigError(
            f"{path} is not an .npz file, so it cannot be an importance matrix.",
            "Pass a .npz file written by Whetstone, or export with --imatrix instead.",
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data[_META_KEY])) if _META_KEY in data.files else {}
            matrix = {key: data[key].astype(np.float32) for key in data.files if key != _META_KEY}
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"{path} cannot be read as an importance matrix: {exc}.",
            "Pass a .npz file written by Whetstone, or export with --imatrix instead.",
        ) from None
    if meta.get("format") != FORMAT or not matrix:
        raise ConfigError(
            f"{path} is not a Whetstone importance matrix.", "Pass a .npz file written by Whetstone."
        )
    if model_dir is not None:
        _check_fits(path, matrix, Path(model_dir))
    return matrix


def _check_fits(path: Path, matrix: Mapping[str, np.ndarray], model_dir: Path) -> None:
    from engine.models.folder import read_safetensors_header, weight_files

    columns = {}
    for file in weight_files(model_dir):
        for name, entry in read_safetensors_header(file).items():
            if name != "__metadata__" and len(entry["shape"]) == 2:
                columns[name] = entry["shape"][1]
    for key, value in matrix.items():
        if columns.get(key) != value.shape[0] or value.ndim != 1:
            found = f"{columns[key]} columns" if key in columns else "no such weight"
            raise ConfigError(
                f"The importance matrix {path} does not fit this model: {key} has {value.shape[0]} "
                f"values, the model {found}.",
                "Use a matrix made for this base model, or export with --imatrix instead.",
            )
