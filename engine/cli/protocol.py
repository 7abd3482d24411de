"""The contract between `whetstone-engine` and whoever runs it (the app, scripts, CI).

Exit codes:  0 done · 1 internal error (a bug; traceback in a log file) · 2 bad input or an
impossible situation the user can fix · 3 stopped by the user (a checkpoint is kept).

On exit 1 or 2 the last line on stderr that starts with one of these says why:
    error: <what is wrong> <what to do>
    internal error: <exception type>: <text> (traceback in <log file>)
The app imports this module instead of repeating the numbers and prefixes.
"""

from __future__ import annotations

from engine.errors import EXIT_BAD_INPUT  # noqa: F401  (part of the protocol)

EXIT_DONE = 0
EXIT_INTERNAL = 1
EXIT_STOPPED = 3
# Never an exit status of the engine: what the app's process wrappers report when the process
# was killed, crashed or could not be started.
EXIT_NO_STATUS = -1

ERROR_PREFIX = "error:"
INTERNAL_PREFIX = "internal error:"


def error_line(message: str) -> str:
    """The `error: ...` line for `message`, always one line."""
    return f"{ERROR_PREFIX} {' '.join(message.split())}"


def internal_error_line(exc: BaseException, log_file: object) -> str:
    """The `internal error: ...` line; the exception text is cut so the line stays readable."""
    text = " ".join(str(exc).split())
    if len(text) > 500:
        text = text[:500] + " …"
    return f"{INTERNAL_PREFIX} {type(exc).__name__}: {text} (traceback in {log_file})"


def is_error_line(line: str) -> bool:
    return line.startswith((ERROR_PREFIX, INTERNAL_PREFIX))


def last_error_line(text: str) -> str:
    """The last `error:` or `internal error:` line in the engine's output; "" when there is none."""
    errors = [line.strip() for line in text.splitlines() if is_error_line(line.strip())]
    return errors[-1] if errors else ""


def error_message(line: str) -> str:
    """What an error line says, for a person: `error: ` dropped; an internal error keeps its label."""
    line = line.strip()
    if line.startswith(ERROR_PREFIX):
        return line[len(ERROR_PREFIX) :].strip()
    return line


def stopped_on_request(code: int, line: str) -> bool:
    """A run of the engine that ended because it was asked to (stopped, or killed by us), not an error."""
    return code in (EXIT_STOPPED, EXIT_NO_STATUS) and not line.startswith(ERROR_PREFIX)
