"""Entry point of the bundled `whetstone-engine` program (the headless engine the app starts)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a no-op unless a library spawns workers on Windows/macOS
    from engine.cli.main import main

    sys.exit(main())
