"""The trainer's tokenizing loop: every row rendered, tokenized and labelled as `render_row` would.

Rows are rendered with `render_text` and labelled with `build_rendered` (the same functions as
`render_row`), but tokenized a batch at a time on a worker thread while the next batch renders.
Used by the trainer's data preparation, the token statistics and the review.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from engine.data.long_rows import Clip, clip_long_row, measure_clipped
from engine.data.preference import measured_side
from engine.data.rendering import Rendered, build_rendered, render_text


def _batches(rows: Iterable, size: int) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _tokenize(tokenizer, texts: list[str], timings: dict[str, float]) -> tuple[list, list]:
    if not texts:
        return [], []
    start = time.perf_counter()
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    timings["tokenize"] = timings.get("tokenize", 0.0) + time.perf_counter() - start
    return encoded["input_ids"], encoded["offset_mapping"]


def iter_rendered(
    tokenizer,
    rows: Iterable,
    max_length: int,
    batch_size: int = 1000,
    timings: dict[str, float] | None = None,
) -> Iterator[list[Rendered | ValueError]]:
    """`render_row` for every row, one list per batch of input rows, in order.

    A row that cannot be rendered comes back as the ValueError `render_text` raised; a row far
    beyond `max_length` is measured from a clipped copy (engine.data.long_rows). Each batch
    is tokenized in one call on a worker thread while the next batch is rendered (the Rust
    tokenizer releases the GIL), then labelled by `build_rendered`. Close the generator (or
    exhaust it) to stop the worker. `timings` gets the seconds spent per stage.
    """
    timings = {} if timings is None else timings
    for stage in ("render", "tokenize", "label"):
        timings.setdefault(stage, 0.0)

    def render(batch: list) -> list[tuple[str, list, Clip | None] | ValueError]:
        start, out = time.perf_counter(), []
        for row in batch:
            if isinstance(row, dict) and "messages" in row and "text" not in row:
                row = row["messages"]  # a raw JSONL object is accepted too
            row = measured_side(row)  # a preference row is measured by one side
            row, clip = clip_long_row(row, max_length)  # a huge row is never tokenized whole
            try:
                out.append((*render_text(tokenizer, row), clip))
            except ValueError as exc:
                out.append(exc)
        timings["render"] += time.perf_counter() - start
        return out

    def label(rendered: list, future: Future) -> list[Rendered | ValueError]:
        encoded = zip(*future.result(), strict=True)
        start, out = time.perf_counter(), []
        for item in rendered:
            if isinstance(item, ValueError):
                out.append(item)
            else:
                ids, offsets = next(encoded)
                rendered = build_rendered(item[0], item[1], ids, offsets, max_length)
                try:
                    out.append(
                        rendered if item[2] is None else measure_clipped(rendered, item[2], max_length)
                    )
                except ValueError as exc:
                    out.append(exc)
        timings["label"] += time.perf_counter() - start
        return out

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-stats") as pool:
        pending = None
        for batch in _batches(rows, max(1, batch_size)):
            rendered = render(batch)
            texts = [item[0] for item in rendered if not isinstance(item, ValueError)]
            future = pool.submit(_tokenize, tokenizer, texts, timings)
            if pending is not None:
                yield label(*pending)
            pending = (rendered, future)
        if pending is not None:
            yield label(*pending)
