"""Entry point of the `whetstone` desktop app."""

from __future__ import annotations

import sys


def main() -> int:
    # The window is built in the app-shell issue; until then say so instead of failing obscurely.
    sys.stderr.write(
        "The Whetstone desktop window is not built yet. The engine works from the command line:\n"
        "  whetstone-engine demo      fine-tune the demo model and compare answers\n"
        "  whetstone-engine --help    every command\n"
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
