"""The ratios and the one printed table of gpu_throughput.py."""

from __future__ import annotations

PAIRS = (("engine", "baseline"), ("unsloth", "baseline"), ("engine", "unsloth"))
KEYS = ("tokens_per_second", "peak_allocated_mb", "peak_reserved_mb")


def longest(side: dict) -> tuple[int | None, bool]:
    """The longest max length that trained at batch 1, and whether it is only a lower bound."""
    search = side.get("search") or {}
    return search.get("longest"), search.get("bound") in ("cap", "time")


def _significant(ratio: float) -> float:
    """Three significant digits: a ratio of 0.0195 must not become 0.019 (a CPU smoke run gives such)."""
    return float(f"{ratio:.3g}")


def ratios(sides: dict) -> dict:
    """a/b for every pair that both ran: tokens/s, peak memory, longest max length at batch 1."""
    out: dict = {}
    for a, b in PAIRS:
        if not sides.get(a, {}).get("tokens_per_second") or not sides.get(b, {}).get("tokens_per_second"):
            continue
        pair = {}
        for key in KEYS:
            x, y = sides[a].get(key), sides[b].get(key)
            pair[key] = _significant(x / y) if x and y else None
        (x, x_low), (y, y_low) = longest(sides[a]), longest(sides[b])
        # A side cut short by the cap or the clock gives a lower bound: where the denominator is
        # one, the ratio is unknown; where only the numerator is, the ratio is a lower bound too.
        pair["longest"] = _significant(x / y) if x and y and not y_low else None
        pair["longest_is_lower_bound"] = bool(pair["longest"]) and x_low
        out[f"{a}/{b}"] = pair
    return out


def _num(value, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "-"


def _mib(value) -> str:
    return f"{value:.0f} MiB" if isinstance(value, int | float) else "-"


def params_text(count: int) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e8 else f"{count / 1e6:.2f}M"


def _ratio(value) -> str:
    return f"{value:.2f}x" if isinstance(value, int | float) else "-"


def table(report: dict) -> str:
    """One table: a row per shape and side, the ratios to the baseline beside each figure."""
    settings = report["settings"]
    rows = [
        (
            "shape",
            "params",
            "side",
            "tokens/s",
            "vs base",
            "peak alloc",
            "vs base",
            "peak resvd",
            "vs base",
            "longest@b1",
            "vs base",
        ),
    ]
    device = "?"
    kind = "cuda"
    for name, shape in report["shapes"].items():
        for side, result in shape["sides"].items():
            device = result.get("device", device)
            kind = result.get("memory_kind", kind)
            pair = shape["ratios"].get(f"{side}/baseline", {}) if side != "baseline" else {}
            size, low = longest(result)
            if size is None:
                longest_text = "no time" if (result.get("search") or {}).get("bound") == "time" else "-"
            else:
                longest_text = (">=" if low else "") + str(size)
            if side == "baseline":
                size_known = size is not None and not low
                ratio = tuple("1.00x" if result.get(k) else "-" for k in KEYS) + (
                    "1.00x" if size_known else "-",
                )
            else:
                ratio = tuple(_ratio(pair.get(k)) for k in (*KEYS, "longest"))
                if pair.get("longest_is_lower_bound"):
                    ratio = (*ratio[:3], ">=" + ratio[3])
            rows.append(
                (
                    name,
                    params_text(shape["parameters"]),
                    side + (" !" if result.get("problem") else ""),
                    _num(result.get("tokens_per_second"), ".0f"),
                    ratio[0],
                    _mib(result.get("peak_allocated_mb")),
                    ratio[1],
                    _mib(result.get("peak_reserved_mb")),
                    ratio[2],
                    longest_text,
                    ratio[3],
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"{device}: NF4 + LoRA r{settings['rank']} all-linear, batch {settings['batch']}, max length "
        f"{settings['max_length']}, random weights, "
        f"{'process RSS' if kind == 'process_rss' else 'CUDA'} peaks"
    ]
    lines += [
        "  ".join(
            cell.rjust(w) if i > 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    problems = [
        f"  ! {name}: {shape['problem']}" for name, shape in report["shapes"].items() if "problem" in shape
    ]
    problems += [
        f"  ! {name} {side}: {result['problem']}"
        for name, shape in report["shapes"].items()
        for side, result in shape["sides"].items()
        if result.get("problem")
    ]
    return "\n".join(lines + problems)
