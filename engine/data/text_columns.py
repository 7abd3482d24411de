"""Text cells that are not UTF-8: found row by row, so one bad cell costs only its row.

pyarrow reads CSV cells (with `check_utf8` off) and Parquet strings without checking them;
a bad byte would otherwise surface later as a UnicodeDecodeError that fails the whole file.
"""

from __future__ import annotations

from typing import Any

from engine.data.files import Problem

ENCODING_HINT = "the file may be Latin-1/Windows-1252: save it as UTF-8"


def not_utf8(where: str, exc: UnicodeDecodeError) -> str:
    return f"{where} is not UTF-8 at byte {exc.start + 1} ({ENCODING_HINT})"


def _bad_cells(column, name: str) -> dict[int, str]:
    """Row index -> message for every cell of `column` that is not valid UTF-8."""
    import pyarrow as pa

    bad: dict[int, str] = {}
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        binary = pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary()
        for index, value in enumerate(column.cast(binary).to_pylist()):
            if value is not None:
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad[index] = not_utf8(f"column {name!r}", exc)
        return bad
    for index in range(len(column)):  # nested strings (lists, structs): only on this rare path
        try:
            column[index].as_py()
        except UnicodeDecodeError as exc:
            bad[index] = not_utf8(f"column {name!r}", exc)
    return bad


def drop_invalid_utf8(table) -> tuple[Any, list[int], list[Problem]]:
    """The table without rows holding bytes that are not UTF-8, the kept 0-based rows, and a
    Problem per dropped row (numbered from 1). A valid table is returned as it is, checked by
    pyarrow's vectorised validation."""
    import pyarrow as pa

    try:
        table.validate(full=True)
        return table, list(range(table.num_rows)), []
    except pa.ArrowInvalid:
        pass
    table = table.combine_chunks()
    bad: dict[int, str] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            for index, message in _bad_cells(column.chunk(0) if column.num_chunks else column, name).items():
                bad.setdefault(index, message)
    if not bad:
        return table, list(range(table.num_rows)), []
    keep = [i for i in range(table.num_rows) if i not in bad]
    problems = [Problem(i + 1, None, message, "not_utf8") for i, message in sorted(bad.items())]
    return table.take(pa.array(keep, type=pa.int64())), keep, problems
