"""Write tests/engine/export/data/kquant_vectors.npz: test tensors and ggml's bytes for them.

usage: python scripts/ggml-reference/make_vectors.py HARNESS GGML_COMMIT
(HARNESS from build.sh). The tests compare engine.export's quantizers with these bytes.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[2] / "tests/engine/export/data/kquant_vectors.npz"
# (ggml type name, with an importance matrix)
CASES = [(k, w) for k in ("q4_K", "q5_K", "q6_K", "q4_0", "q5_0", "q5_1") for w in (False, True)]
CASES += [("q8_0", False)]


def tensors(rng):
    yield "normal", rng.standard_normal((8, 512)).astype(np.float32) * 0.02
    x = rng.standard_normal((8, 512)).astype(np.float32)
    x[:, :40] = 0  # all-zero 32-blocks
    x[3] = 0  # an all-zero row
    x[5, 100] = 50  # an outlier
    yield "zeros_outlier", x
    yield "positive", np.abs(rng.standard_normal((4, 512))).astype(np.float32)
    yield "heavy", rng.standard_t(3, (8, 512)).astype(np.float32) * 1e-3
    yield "ties", (np.round(rng.standard_normal((8, 512)) * 4) / 8).astype(np.float32)


def reference(harness, kind, x, weights):
    with tempfile.TemporaryDirectory() as tmp:
        x.tofile(f"{tmp}/x")
        args = [harness, kind, str(x.shape[0]), str(x.shape[1]), f"{tmp}/x", "-", f"{tmp}/out"]
        if weights is not None:
            weights.tofile(f"{tmp}/w")
            args[5] = f"{tmp}/w"
        subprocess.run(args, check=True)
        return np.fromfile(f"{tmp}/out", dtype=np.uint8).reshape(x.shape[0], -1)


def main(harness: str, commit: str) -> None:
    rng = np.random.default_rng(20261207)
    arrays = {"ggml_commit": np.array(commit)}
    for name, x in tensors(rng):
        weights = (rng.random(x.shape[1]) ** 3 * 5).astype(np.float32)
        arrays[f"{name}/x"], arrays[f"{name}/imatrix"] = x, weights
        for kind, weighted in CASES:
            out = reference(harness, kind, x, weights if weighted else None)
            arrays[f"{name}/{kind}/{'imatrix' if weighted else 'plain'}"] = out
    np.savez_compressed(OUT, **arrays)
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main(*sys.argv[1:3])
