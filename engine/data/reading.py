"""From a data file to checked rows: read the file, apply its shape, report every bad row.

Good rows stay usable when some are bad; every row that is not used has a Problem saying
why, with its row number and, for line-based files, its line number. Nothing here writes to
the user's file.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.files import Problem, RawFile, file_kind, iter_records, read_file
from engine.data.shapes import RowProblem, Shape, detect_shape
from engine.errors import DataError


@dataclass
class ReadResult:
    rows: list[Any]
    """Checked rows in renderer form (messages list, prompt/completion dict, or text dict)."""
    row_numbers: list[int]
    line_numbers: list[int | None]
    shape: Shape
    kind: str
    records: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def format(self) -> str:
        return self.shape.name

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems if p.severity == "error"))


def columns_of(raw: RawFile) -> list[str]:
    if raw.table.column_names != ["__json__"]:
        return list(raw.table.column_names)
    return _key_union(record for _row, _line, record in iter_records(raw, batch_size=256))


def _key_union(records: Iterable[Any], sample: int = 200) -> list[str]:
    """JSON records' columns: the union of keys over the first `sample` objects (rows may differ in
    optional fields)."""
    keys: dict[str, None] = {}
    for record in records:
        if isinstance(record, dict):
            keys.update(dict.fromkeys(record))
            sample -= 1
            if sample <= 0:
                break
    return list(keys)


def _json_lines(handle) -> Iterator[Any]:
    """The parsed lines of a JSONL file; a broken line is skipped (it is the Data tab's to show)."""
    for line in handle:
        try:
            yield json.loads(line) if line.strip() else None
        except ValueError:
            continue


def peek_columns(path: str | Path, sample: int = 200) -> list[str]:
    """A data file's columns without reading all of it: a Parquet schema, a CSV/TSV header, the keys of
    the first `sample` JSONL records (a broken line is skipped: it is the Data tab's to show). Other
    kinds (JSON arrays, text, datasets folders) are read whole."""
    path = Path(path).expanduser()
    kind = file_kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if kind in ("csv", "tsv"):
        import pyarrow.csv as pacsv

        parse = pacsv.ParseOptions(delimiter="\t" if kind == "tsv" else ",", newlines_in_values=True)
        with pacsv.open_csv(path, parse_options=parse) as head:
            return list(head.schema.names)
    if kind != "jsonl":
        return columns_of(read_file(path))
    with open(path, encoding="utf-8", errors="replace") as handle:
        return _key_union(_json_lines(handle), sample)


def iter_checked(raw: RawFile, shape: Shape) -> Iterator[tuple[int, int | None, Any, Problem | None]]:
    """Yield (row, line, normalised row or None, problem or None) for every parsed record."""
    for row, line, record in iter_records(raw):
        try:
            yield row, line, shape.normalise(record), None
        except RowProblem as exc:
            yield row, line, None, Problem(row, line, str(exc), exc.kind)


def duplicate_key(row: Any) -> bytes:
    return hashlib.blake2b(
        json.dumps(row, sort_keys=True, ensure_ascii=False).encode(), digest_size=16
    ).digest()


def no_usable_rows(path: str | Path, problems: list[Problem]) -> DataError:
    errors = [p for p in problems if p.severity == "error"]
    first = f" First problem: {errors[0].where()}: {errors[0].message}." if errors else ""
    return DataError(f"{path} has no usable rows ({len(errors)} bad).{first}", "Fix the rows and try again.")


def open_data(
    path: str | Path, fmt: str = "auto", columns: dict[str, str] | None = None, text_mode: str = "blank_lines"
) -> tuple[RawFile, Shape]:
    raw = read_file(path, text_mode)
    if raw.table.num_rows == 0:
        raise no_usable_rows(path, raw.problems)
    return raw, _shape_of(raw, path, fmt, columns)


def _shape_of(raw: RawFile, path: str | Path, fmt: str, columns: dict[str, str] | None) -> Shape:
    try:
        return detect_shape(columns_of(raw), fmt, columns)
    except DataError as exc:
        raise DataError(f"{Path(path).name}: {exc.message}", exc.hint) from None


def read_data(
    path: str | Path,
    fmt: str = "auto",
    columns: dict[str, str] | None = None,
    text_mode: str = "blank_lines",
    allow_empty: bool = False,
) -> ReadResult:
    """Read and check a whole file; raise DataError if no row is usable (unless `allow_empty`:
    then the result has no rows, and the problems say why)."""
    raw = read_file(path, text_mode)
    if raw.table.num_rows == 0:
        if not allow_empty:
            raise no_usable_rows(path, raw.problems)
        unknown = Shape("unknown", dict(columns or {}), "no record could be read")
        problems = sorted(raw.problems, key=lambda p: p.row or 0)
        return ReadResult([], [], [], unknown, raw.kind, raw.records, problems)
    shape = _shape_of(raw, path, fmt, columns)
    rows, row_numbers, line_numbers, problems = [], [], [], list(raw.problems)
    seen: dict[bytes, int] = {}
    for row, line, value, problem in iter_checked(raw, shape):
        if problem is not None:
            problems.append(problem)
            continue
        key = duplicate_key(value)
        if key in seen:
            problems.append(Problem(row, line, f"exact duplicate of row {seen[key]}", "duplicate", "warning"))
        else:
            seen[key] = row
        rows.append(value)
        row_numbers.append(row)
        line_numbers.append(line)
    problems.sort(key=lambda p: p.row or 0)
    if not rows and not allow_empty:
        raise no_usable_rows(path, problems)
    return ReadResult(rows, row_numbers, line_numbers, shape, raw.kind, raw.records, problems)
