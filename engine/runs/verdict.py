"""The one judgement of a run's state and how it ended: a state word, a message and a hint.

Everything that shows a run asks here: the run summary (CLI listings, the project browser,
the runs list), the GUI's run watcher when an engine exits (notification, monitor) and the
monitor while it follows a live run. They differ only in what they know: the watcher knows
the exit code of an engine it launched; a summary knows only whether the engine is alive.

A run is never "done" unless its last status says so; a run whose engine is gone without a
final status was killed or crashed ("interrupted"), never "running".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import EXIT_BAD_INPUT

ACTIVE = ("loading", "training", "saving")  # the states a live engine writes
FINAL = ("done", "stopped", "failed")  # the states that end a run

# The short word for each state, for lists (the browser, the runs list, `project show`).
STATE_WORDS = {
    "running": "running",
    "done": "done",
    "stopped": "stopped",
    "paused": "paused",
    "failed": "failed",
    "interrupted": "interrupted",
    "refused": "refused",
    "new": "not started",
}
# A heading for each state and live phase, for the run monitor.
STATE_HEADINGS = {
    "starting": "Starting the engine…",
    "loading": "Loading the model and data…",
    "training": "Training",
    "saving": "Saving the adapter…",
    "running": "Running",
    "done": "Done",
    "stopped": "Stopped",
    "paused": "Paused",
    "failed": "Failed",
    "interrupted": "Interrupted",
    "refused": "Not started",
    "new": "Not started",
}


@dataclass(frozen=True)
class Verdict:
    state: str  # running, done, stopped, paused, failed, interrupted, refused or new
    message: str = ""  # what happened, in a sentence ("" while running and for a new run)
    hint: str = ""  # what the user can do about it
    phase: str = ""  # while running: starting, loading, training or saving

    @property
    def text(self) -> str:
        """Message and hint as one line (a notification, the monitor's message)."""
        return " ".join(f"{self.message} {self.hint}".split())

    @property
    def shown(self) -> str:
        """The state to show: the live phase while running, else the state."""
        return self.phase if self.state == "running" and self.phase else self.state


def judge_run(
    status: dict[str, Any] | None,
    error: dict[str, Any] | None = None,
    *,
    alive: bool,
    started: bool = True,
    exit_code: int | None = None,
    error_line: str = "",
) -> Verdict:
    """Judge a run from what its folder and its engine say.

    `status`: the run's last status event (None if it wrote none, or none since the engine was
    launched); `error`: the last error event, for a failed run; `alive`: whether its engine still
    runs; `started`: whether the run wrote any event at all; `exit_code`: the engine's, when it was
    launched by the caller and has exited; `error_line`: the engine's own `error:` line from its
    output, when it wrote one.
    """
    state = (status or {}).get("state")
    if state == "done":
        if (status or {}).get("reason") == "early_stopping":
            return Verdict("done", str(status.get("message") or "Stopped early: the adapter is saved."))
        return Verdict("done", "Finished: the adapter is saved.")
    if state == "stopped":
        return _stopped(status or {})
    if state == "failed":
        error = error or {}
        return Verdict("failed", str(error.get("message") or "The run failed."), str(error.get("hint") or ""))
    if alive:
        return Verdict("running", phase=state if state in ACTIVE else "starting")
    if exit_code == EXIT_BAD_INPUT:  # refused before training started (bad settings, model or data)
        return Verdict(
            "refused",
            error_line or "The engine refused to start.",
            "" if error_line else "See engine-output.log in the run folder.",
        )
    if not started and exit_code is None:
        return Verdict("new")
    how = f" (exit code {exit_code})" if exit_code not in (None, 0) else ""
    detail = f": {error_line}" if error_line else ""
    return Verdict(
        "interrupted",
        f"The engine process ended without finishing{how}{detail}. It was killed or crashed.",
        "Resume continues from the last complete checkpoint.",
    )


def _stopped(status: dict[str, Any]) -> Verdict:
    paused = bool(status.get("paused"))
    state = "paused" if paused else "stopped"
    word = "Paused" if paused else "Stopped"
    if status.get("message"):  # stopped before training, or interrupted twice: it says why itself
        return Verdict(state, str(status["message"]))
    where = f" at step {status['step']}" if status.get("step") is not None else ""
    return Verdict(state, f"{word}{where}; a checkpoint is saved, so you can resume.")
