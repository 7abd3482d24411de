"""The plottable series of a run (loss, eval loss, learning rate, ...), built from its events.

Used by the live training plots and the compare-runs view. Qt-free. Points live in
growable numpy buffers so that a 100k-step history costs a few MB and appending one
event at a time stays cheap; a resume from an earlier checkpoint "rewinds" every series
to the checkpoint's step, so the curves continue from there instead of zig-zagging.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import PREFERENCE_METHODS
from engine.errors import UserError
from engine.runs.events import read_events
from engine.runs.state import CONFIG_NAME, EVENTS_NAME

SERIES = ("loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_second", "peak_memory_mb")
# Preference runs (dpo, orpo, kto) add these: rewards of the chosen and the rejected replies, their
# margin and the share of pairs where chosen wins, per step and at each evaluation.
PREFERENCE_SERIES = (
    "reward_chosen",
    "reward_rejected",
    "reward_margin",
    "reward_accuracy",
    "eval_reward_margin",
    "eval_reward_accuracy",
)
ALL_SERIES = SERIES + PREFERENCE_SERIES
_METRICS = (
    "loss",
    "learning_rate",
    "grad_norm",
    "tokens_per_second",
    "peak_memory_mb",
    "reward_chosen",
    "reward_rejected",
    "reward_margin",
    "reward_accuracy",
)
_EVALS = ("eval_loss", "eval_reward_margin", "eval_reward_accuracy")
_NUMBER = (int, float)
_STAGE_LIMIT = 4096  # staged points beyond this are moved into the numpy buffers


def _is_number(value: object) -> bool:
    """A finite number, not a bool; also numpy scalars (the hot path checks exact types first)."""
    return isinstance(value, _NUMBER) and not isinstance(value, bool) and value - value == 0


class _Series:
    """One series: numpy buffers (amortised doubling) plus a staging list for new points.

    Appends go to Python lists (cheap per point); they move into the buffers in one slice
    assignment when the series is read or rewound, or when a batch of events ends with
    more than _STAGE_LIMIT points staged.
    """

    __slots__ = ("steps", "values", "n", "stage_x", "stage_y")

    def __init__(self) -> None:
        self.steps = np.empty(256, dtype=np.float64)
        self.values = np.empty(256, dtype=np.float64)
        self.n = 0
        self.stage_x: list[float] = []
        self.stage_y: list[float] = []

    def last_step(self) -> float | None:
        if self.stage_x:
            return self.stage_x[-1]
        return float(self.steps[self.n - 1]) if self.n else None

    def flush(self) -> None:
        k = len(self.stage_x)
        if not k:
            return
        need = self.n + k
        if need > len(self.steps):
            size = max(need, 2 * len(self.steps))
            for name in ("steps", "values"):
                grown = np.empty(size, dtype=np.float64)
                grown[: self.n] = getattr(self, name)[: self.n]
                setattr(self, name, grown)
        self.steps[self.n : need] = self.stage_x
        self.values[self.n : need] = self.stage_y
        self.n = need
        self.stage_x.clear()  # in place: add_events holds bound appends to these lists
        self.stage_y.clear()

    def keep_until(self, step: float, inclusive: bool = True) -> bool:
        """Drop the points after `step` (or at and after it); True if any were dropped."""
        self.flush()
        keep = int(np.searchsorted(self.steps[: self.n], step, side="right" if inclusive else "left"))
        dropped = keep < self.n
        self.n = keep
        return dropped

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        self.flush()
        return self.steps[: self.n], self.values[: self.n]

    def __len__(self) -> int:
        return self.n + len(self.stage_x)


class RunHistory:
    """The plottable series of one run, built incrementally from events (handles rewinds)."""

    def __init__(self) -> None:
        self._series = {name: _Series() for name in ALL_SERIES}
        self.memory_kind: str | None = None  # "cuda_allocated" or "process_rss", from the last metrics
        self.method: str | None = None  # training.method, from the "model" event (older runs: None)
        self.max_steps: int | None = None
        self._last_loss: float | None = None
        # Bound appends for the hot path (one metrics event per step): no method calls per value.
        self._appends = [
            (name, self._series[name].stage_x.append, self._series[name].stage_y.append) for name in _METRICS
        ]

    def add_events(self, events: Iterable[dict]) -> set[str]:
        """Apply events in order; returns the names of the series that changed."""
        changed: set[str] = set()
        mark = changed.add
        appends = self._appends
        last_loss = self._last_loss
        for event in events:
            kind = event.get("type")
            if kind == "metrics":
                step = event.get("step")
                if type(step) is not int and not _is_number(step):
                    continue
                if last_loss is not None and step <= last_loss:
                    # A repeated step without its status event: treat it as a resume from step - 1.
                    changed |= self._rewind(step, inclusive=False)
                for name, add_x, add_y in appends:
                    value = event.get(name)
                    # Exact types first (fast; skip None/bool/str); value - value != 0 skips NaN and inf.
                    if (type(value) in _NUMBER and value - value == 0) or (
                        value is not None and _is_number(value)
                    ):
                        add_x(step)
                        add_y(value)
                        mark(name)
                        if name == "loss":
                            last_loss = step
                memory_kind = event.get("memory_kind")
                if memory_kind:
                    self.memory_kind = memory_kind
                if type(event.get("max_steps")) is int:
                    self.max_steps = event["max_steps"]
            elif kind == "eval":
                step = event.get("step")
                if not _is_number(step):
                    continue
                for name in _EVALS:
                    value = event.get(name)
                    if not _is_number(value):
                        continue
                    evals = self._series[name]
                    last = evals.last_step()
                    if last is not None and step <= last:  # a re-evaluation at a step replaces the old point
                        evals.keep_until(step, inclusive=False)
                    evals.stage_x.append(step)
                    evals.stage_y.append(value)
                    mark(name)
            elif kind == "model" and isinstance(event.get("method"), str):
                self.method = event["method"]
            elif kind == "status" and event.get("state") == "training":
                step = event.get("step")
                if _is_number(step):
                    changed |= self._rewind(step, inclusive=True)
                    last_loss = self._series["loss"].last_step()
                if type(event.get("max_steps")) is int:
                    self.max_steps = event["max_steps"]
        self._last_loss = last_loss
        if (
            len(self._series["loss"].stage_x) > _STAGE_LIMIT
            or len(self._series["eval_loss"].stage_x) > _STAGE_LIMIT
        ):
            for series in self._series.values():
                series.flush()
        return changed

    def _rewind(self, step: float, inclusive: bool) -> set[str]:
        return {name for name, s in self._series.items() if s.keep_until(step, inclusive)}

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) as float64 views, valid until the next add_events."""
        return self._series[name].view()

    def has_preference(self) -> bool:
        """Whether this is a preference run: its model event says so, or reward figures arrived."""
        return self.method in PREFERENCE_METHODS or any(len(self._series[name]) for name in PREFERENCE_SERIES)

    def last_step(self) -> int | None:
        """The highest step of any plotted point (after a rewind: of the points kept)."""
        steps = [s.last_step() for s in self._series.values()]
        known = [s for s in steps if s is not None]
        return int(max(known)) if known else None

    def __len__(self) -> int:
        return len(self._series["loss"])


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average (`weight` in [0, 0.999]), vectorised."""
    values = np.asarray(values, dtype=np.float64)
    weight = float(min(max(weight, 0.0), 0.999))
    n = len(values)
    if n == 0 or weight == 0.0:
        return values.copy()
    ema = (1.0 - weight) * _recurrence(values, weight)
    # Debias: divide by 1 - w^k; once w^k < 1e-17 that is exactly 1, so only the head needs it.
    log_w = np.log(weight)
    head = min(n, int(np.ceil(39.2 / -log_w)) + 1)
    ema[:head] /= 1.0 - np.exp((np.arange(head) + 1.0) * log_w)
    return ema


def _recurrence(x: np.ndarray, a: float) -> np.ndarray:
    """y[i] = a * y[i-1] + x[i] from y[-1] = 0, for 0 <= a < 1, without a Python loop per point.

    Blocks of the input are solved at once with a scaled cumulative sum (the block is short
    enough that a^-block cannot overflow); the state carried between blocks is the same
    recurrence on the blocks' last values with factor a^block, solved recursively.
    """
    if a < 1e-300:
        return x.copy()
    log_a = np.log(a)
    block = int(min(256, 600 // -log_a))
    if block <= 1:  # a so small that the history never matters
        return x.copy()
    n = len(x)
    blocks = -(-n // block)
    grid = np.zeros(blocks * block)
    grid[:n] = x
    grid = grid.reshape(blocks, block)
    j = np.arange(block)
    down = np.exp(j * log_a)  # a^j
    local = np.cumsum(grid * np.exp(-j * log_a), axis=1) * down  # each block from a zero state
    if blocks > 1:
        ends = _recurrence(local[:, -1], np.exp(block * log_a))  # state at each block's end
        local[1:] += ends[:-1, None] * (down * a)[None, :]
    return local.ravel()[:n]


def load_history(run_dir: str | Path) -> RunHistory:
    """The history of a finished or running run, from RUN_DIR/events.jsonl (a torn last line is ignored)."""
    history = RunHistory()
    history.add_events(read_events(Path(run_dir) / EVENTS_NAME))
    return history


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """RUN_DIR/config.toml as a dict; raises UserError when it is missing or unreadable."""
    path = Path(run_dir) / CONFIG_NAME
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"Run {Path(run_dir).name} has no {CONFIG_NAME}, so its settings are unknown.",
            "Runs started outside Whetstone, or deleted in part, cannot be compared.",
            kind="io",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"Cannot read the settings of run {Path(run_dir).name}: {exc}.", kind="io") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            f"The settings file of run {Path(run_dir).name} is damaged ({exc}).", f"Check {path}.", kind="io"
        ) from None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def config_diff(run_a: str | Path | Mapping, run_b: str | Path | Mapping) -> list[tuple[str, object, object]]:
    """(dotted key, value in a, value in b) for every setting that differs; missing is None.

    Each argument is a run folder (its config.toml is read) or an already loaded config dict.
    """
    a = _flatten(run_a if isinstance(run_a, Mapping) else load_run_config(run_a))
    b = _flatten(run_b if isinstance(run_b, Mapping) else load_run_config(run_b))
    return [
        (key, a.get(key), b.get(key))
        for key in sorted(a.keys() | b.keys())
        if not _same(a.get(key), b.get(key))
    ]


def _same(va: object, vb: object) -> bool:
    # True == 1 in Python, but a switch is not a number; 1 and 1.0 are the same setting.
    if type(va) is bool or type(vb) is bool:
        return type(va) is type(vb) and va == vb
    return va == vb
