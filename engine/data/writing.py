"""Saving rows as JSONL or Parquet, atomically: a kill at any instant leaves the old file intact."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import DataError
from engine.util.files import atomic_write_bytes


def to_record(row: Any) -> dict[str, Any]:
    """Renderer-form row -> the standard record written to files."""
    return {"messages": row} if isinstance(row, list) else dict(row)


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    lines = [json.dumps(to_record(row), ensure_ascii=False) + "\n" for row in rows]
    atomic_write_bytes(path, "".join(lines).encode("utf-8"))


def write_parquet(path: str | Path, rows: Iterable[Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist([to_record(row) for row in rows]), sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def write_rows(path: str | Path, rows: Iterable[Any]) -> None:
    """Write by the file's suffix: .jsonl or .parquet."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        write_jsonl(path, rows)
    elif suffix == ".parquet":
        write_parquet(path, rows)
    else:
        raise DataError(
            f"Cannot save data as {suffix or 'a file without a suffix'}.", "Use .jsonl or .parquet."
        )
