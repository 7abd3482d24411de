"""The ratios and the printed tables of gpu_throughput.py."""

from __future__ import annotations

# An estimate further than this from a measured peak is to be fixed (it decides checkpointing and fit).
CALIBRATION_TOLERANCE = 0.15
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
    return "\n".join(lines + problems + engine_choices(report))


def engine_choices(report: dict) -> list[str]:
    """What the engine side ran with (its "auto" settings decided on this machine) and its warnings:
    a figure from a run whose fused kernels fell back is not a figure for the fused kernels."""
    lines = []
    for name, shape in report["shapes"].items():
        engine = shape["sides"].get("engine") or {}
        if "choices" in engine:
            said = ", ".join(f"{key} {value}" for key, value in engine["choices"].items())
            lines.append(f"  engine on {name}: {said}")
        lines += [f"    warning: {message}" for message in engine.get("warnings", [])]
    return lines


def calibration(report: dict) -> list[dict]:
    """The engine's memory estimate next to what the engine side measured, one row per measurement.

    Rows: the training run (its batch and max length), and each length the batch-1 search tried.
    `ratio` is estimate / measured; `off` marks a ratio outside 1 ± CALIBRATION_TOLERANCE. A length
    that ran out of memory has no peak: there `says_fits` tells whether the estimate agreed.
    """
    rows = []
    settings = report["settings"]
    for name, shape in report["shapes"].items():
        engine = shape["sides"].get("engine") or {}
        device_mb = engine.get("device_memory_mb")
        measured = [
            (
                settings["batch"],
                settings["max_length"],
                True,
                engine.get("peak_allocated_mb"),
                engine.get("estimate_mb"),
            )
        ]
        for length, fits, _seconds, *rest in (engine.get("search") or {}).get("probes", []):
            peak, estimate = (rest + [None, None])[:2]
            measured.append((1, length, fits, peak, estimate))
        for batch, length, fits, peak, estimate in measured:
            if estimate is None or (fits and not peak):  # the CPU's RSS gives no per-probe peak
                continue
            row = {
                "shape": name,
                "batch": batch,
                "max_length": length,
                "estimate_mb": estimate,
                "measured_mb": peak if fits else None,
                "fits": fits,
            }
            if fits and peak:
                row["ratio"] = _significant(estimate / peak)
                row["off"] = abs(estimate / peak - 1) > CALIBRATION_TOLERANCE
            elif not fits and device_mb:
                row["says_fits"] = estimate <= device_mb
            rows.append(row)
    return rows


def calibration_table(rows: list[dict], kind: str) -> str:
    """The calibration rows as text (empty when the engine side measured nothing)."""
    if not rows:
        return ""
    what = "process RSS" if kind == "process_rss" else "CUDA allocated"
    lines = [
        f"memory estimate vs measured peak ({what}), engine side; off = more than "
        f"{CALIBRATION_TOLERANCE:.0%} apart"
    ]
    head = ("shape", "batch", "length", "estimate", "measured", "est/meas", "")
    cells = [head]
    for r in rows:
        if r["fits"]:
            verdict = "off" if r.get("off") else ""
            measured, ratio = _mib(r["measured_mb"]), _ratio(r.get("ratio"))
        else:
            measured, ratio = "out of memory", "-"
            verdict = {True: "estimate said it fits", False: "", None: ""}[r.get("says_fits")]
        cells.append(
            (
                r["shape"],
                str(r["batch"]),
                str(r["max_length"]),
                _mib(r["estimate_mb"]),
                measured,
                ratio,
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines += [
        "  ".join(
            c.rjust(w) if 0 < i < 6 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    ]
    return "\n".join(lines)
