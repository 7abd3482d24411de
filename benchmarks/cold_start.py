"""Cold start of the app to its first window: page cache dropped, fresh HOME and workspace.

    sudo .venv/bin/python benchmarks/cold_start.py dist/whetstone/whetstone   # the bundle
    sudo .venv/bin/python benchmarks/cold_start.py .venv/bin/whetstone        # the venv

Prints, per run, spawn -> first window (wall, includes PyInstaller's bootloader) and the app's own
in-process first-paint time. Dropping the cache needs root; without it the runs are warm starts.
"""

import json
import os
import subprocess
import sys
import tempfile
import time


def drop_page_cache() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def main() -> None:
    exe = sys.argv[1] if len(sys.argv) > 1 else "dist/whetstone/whetstone"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for _ in range(runs):
        cold = drop_page_cache()
        with tempfile.TemporaryDirectory() as home:
            env = dict(
                os.environ, QT_QPA_PLATFORM="offscreen", HOME=home, WHETSTONE_HOME=os.path.join(home, "data")
            )
            spawned = time.time()
            out = subprocess.run(
                [exe, "--report-startup", "--report-after", "1"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            ).stdout
        report = json.loads([line for line in out.splitlines() if "first_paint_wall" in line][-1])
        print(
            f"{'cold' if cold else 'warm (no root: cache not dropped)'}: spawn -> first window "
            f"{report['first_paint_wall'] - spawned:.2f} s, "
            f"in-process first paint {report['first_paint_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
