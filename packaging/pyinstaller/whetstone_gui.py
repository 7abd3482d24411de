"""Entry point of the bundled `whetstone` program (the desktop app)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a no-op unless a library spawns workers on Windows/macOS
    from app.main import main

    sys.exit(main())
