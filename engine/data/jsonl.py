"""Reading JSON Lines: pyarrow's fast reader for clean files, line by line for everything else.

pyarrow's reader crashes the process on some input (a file that is just `null`, nesting
thousands of levels deep) and does not check UTF-8, so a file goes to it only when a cheap
scan shows every line opens an object with a bounded number of brackets, and its table is
used only when it is valid UTF-8 and no deeper than `MAX_NESTING`. Anything else is read
line by line, where one bad line (invalid JSON, bytes that are not UTF-8, nesting too deep)
costs only that line, reported with its number.
"""

from __future__ import annotations

from pathlib import Path

from engine.data import json_safety
from engine.data.files import _CHUNK, Problem, RawFile, _dataset_from_chunks
from engine.errors import DataError

JSON_BLOCK = 32 << 20
"""Bytes per pyarrow JSON block: bigger blocks parse a large file about twice as fast as the 1 MiB default."""
BOM = b"\xef\xbb\xbf"
ARROW_MAX_OPENERS = 1000
"""Most `{`/`[` one line may hold to go to pyarrow (it crashed at 20k levels, held at 5k)."""


def read_jsonl(path: Path) -> RawFile:
    return _read_jsonl_arrow(path) or _read_jsonl_lines(path)


def read_clean_jsonl(path: Path):
    """(pyarrow Table, number of lines) of a clean JSONL file, else None: every line one JSON
    object (so row N is line N), bracket counts pyarrow survives, valid UTF-8, depth in bounds."""
    import pyarrow as pa
    import pyarrow.json as pajson

    scanned = scan_clean_jsonl(path)
    if scanned is None:
        return None
    lines, offset = scanned
    options = pajson.ReadOptions(block_size=JSON_BLOCK)
    try:
        if offset:  # skip the byte order mark without copying the file
            with pa.memory_map(str(path)) as mapped:
                table = pajson.read_json(
                    pa.BufferReader(mapped.read_buffer().slice(offset)), read_options=options
                )
        else:
            table = pajson.read_json(path, read_options=options)
        table.validate(full=True)  # strings that are not UTF-8: the line reader names the lines
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    if (
        table.num_rows != lines
        or 1 + max(map(_type_depth, table.schema.types), default=0) > json_safety.MAX_NESTING
    ):
        return None
    return table, lines


def _type_depth(arrow_type) -> int:
    """Nesting depth of an Arrow type (0 for a plain value), without recursion."""
    import pyarrow as pa

    deepest, stack = 0, [(arrow_type, 0)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if pa.types.is_struct(current):
            stack += [(current.field(i).type, depth + 1) for i in range(current.num_fields)]
        elif pa.types.is_map(current):
            stack += [(current.key_type, depth + 1), (current.item_type, depth + 1)]
        elif hasattr(current, "value_type") and not pa.types.is_dictionary(current):
            stack.append((current.value_type, depth + 1))
    return deepest


def _read_jsonl_arrow(path: Path) -> RawFile | None:
    import datasets

    found = read_clean_jsonl(path)
    if found is None:
        return None
    table, n = found
    if n == 0:
        return None
    numbers = list(range(1, n + 1))
    try:
        dataset = datasets.Dataset(table)
    except Exception:  # a schema datasets cannot hold: the line-by-line reader reports it row by row
        return None
    return RawFile(path, "jsonl", dataset, numbers, numbers, [], n)


def scan_clean_jsonl(path: Path) -> tuple[int, int] | None:
    """(number of lines, bytes to skip for a BOM) if every line starts with "{" (so none is
    blank) and holds at most ARROW_MAX_OPENERS brackets, else None. numpy over a memory map
    keeps this at disk speed."""
    import mmap

    with open(path, "rb") as handle:
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return None
    with mapped:
        offset = len(BOM) if mapped[: len(BOM)] == BOM else 0
        lines = _lines_if_all_objects(mapped, offset)
    return None if lines is None else (lines, offset)


def _lines_if_all_objects(mapped, offset: int = 0) -> int | None:
    import numpy as np

    # numpy views pin the map, so they live only inside this function.
    data = np.frombuffer(mapped, dtype=np.uint8)[offset:]
    if not len(data) or data[0] != ord("{"):
        return None
    lines, step, carry, last_newline = 0, 1 << 26, 0, -1
    for start in range(0, len(data), step):
        block = data[start : start + step]
        newlines = np.flatnonzero(block == ord("\n")) + start
        following = newlines[newlines + 1 < len(data)] + 1
        if not (data[following] == ord("{")).all():
            return None
        lines += len(newlines)
        # Brackets per line bound its nesting depth (from above: brackets in strings count too),
        # and a line's length bounds its brackets: only blocks with a long line are counted.
        # Segment k of the block is the text after its k-th newline; segment 0 continues the last line.
        ends = np.concatenate(([last_newline], newlines, [start + len(block) - 1]))
        if np.diff(ends).max() > ARROW_MAX_OPENERS:
            # x | 0x20 == "{" holds for "{" and "[" only.
            openers = np.flatnonzero((block | 0x20) == ord("{"))
            counts = np.bincount(np.searchsorted(newlines - start, openers), minlength=len(newlines) + 1)
            counts[0] += carry
            if counts.max() > ARROW_MAX_OPENERS:
                return None
            carry = int(counts[-1])
        else:
            carry = int(ends[-1] - ends[-2])  # the unfinished line's length bounds its brackets
        last_newline = int(newlines[-1]) if len(newlines) else last_newline
    return lines if data[-1] == ord("\n") else lines + 1


def _read_jsonl_lines(path: Path) -> RawFile:
    """Line by line: one bad line costs only that line, reported with its number."""
    from engine.data.text_columns import ENCODING_HINT

    problems, rows, row_numbers, line_numbers = [], [], [], []
    chunks: list[list[dict]] = []
    record = 0
    with open(path, "rb") as handle:
        for number, line_bytes in enumerate(handle, start=1):
            if number == 1 and line_bytes.startswith(BOM):
                line_bytes = line_bytes[len(BOM) :]
            if not line_bytes.strip():
                continue
            record += 1
            try:
                line = line_bytes.rstrip(b"\r\n").decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(
                    Problem(
                        record,
                        number,
                        f"not UTF-8 at byte {exc.start + 1} of the line ({ENCODING_HINT})",
                        "not_utf8",
                    )
                )
                continue
            try:
                obj = json_safety.loads(line)
            except json_safety.TooDeep as exc:
                problems.append(Problem(record, number, str(exc), "too_deep"))
                continue
            except ValueError as exc:  # json.JSONDecodeError
                msg, col = getattr(exc, "msg", str(exc)), getattr(exc, "colno", 0)
                problems.append(
                    Problem(record, number, f"invalid JSON: {msg} at column {col}", "invalid_json")
                )
                continue
            if not isinstance(obj, dict):
                problems.append(
                    Problem(
                        record,
                        number,
                        f"wrong type: the line is {json_safety.json_type(obj)}, not an object",
                        "wrong_type",
                    )
                )
                continue
            # Stored as JSON text: rows of one file may disagree on types, which Arrow columns cannot hold.
            rows.append({"__json__": line})
            row_numbers.append(record)
            line_numbers.append(number)
            if len(rows) >= _CHUNK:
                chunks.append(rows)
                rows = []
    chunks.append(rows)
    if record == 0:
        raise DataError(f"Data file {path} is empty.", "Add one JSON object per line.")
    return RawFile(path, "jsonl", _dataset_from_chunks(chunks), row_numbers, line_numbers, problems, record)
