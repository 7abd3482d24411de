"""scripts/gpu-kit (the wheels a CUDA machine without a package index needs) and gpu-check --kit."""

from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GPU_CHECK = ROOT / "scripts" / "gpu-check"


def load_kit():
    loader = importlib.machinery.SourceFileLoader("gpu_kit", str(ROOT / "scripts" / "gpu-kit"))
    spec = importlib.util.spec_from_loader("gpu_kit", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def make_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel: the files, METADATA, WHEEL and a RECORD with their hashes."""
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    wheel = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def run_gpu_check(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(
        [str(GPU_CHECK), *args], cwd=ROOT, capture_output=True, text=True, timeout=240, env=env
    )


def test_every_kit_package_has_a_pinned_version():
    kit = load_kit()
    pins = kit.pinned_versions()
    assert "torch" not in kit.KIT  # the GPU machine's own CUDA torch is used, never a download
    assert [name for name in kit.KIT if kit.norm(name) not in pins] == []


def test_bitsandbytes_is_cut_to_cpu_and_recent_cuda_libraries_and_still_installs(tmp_path):
    kit = load_kit()
    libraries = ["cpu", "cuda118", "cuda124", "cuda126", "cuda128", "cuda130", "cuda132", "rocm64", "xpu2026"]
    files = {f"bitsandbytes/libbitsandbytes_{lib}.so": lib.encode() * 1000 for lib in libraries}
    files["bitsandbytes/__init__.py"] = b"__version__ = '0.50.2'\n"
    wheel = make_wheel(tmp_path, "bitsandbytes", "0.50.2", files)

    before, after = kit.trim_bitsandbytes(wheel)
    assert after < before
    kit.check_record(wheel)  # every row of RECORD names a file that is there, with its hash
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        record = zf.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
    kept = {
        n.removeprefix("bitsandbytes/libbitsandbytes_").removesuffix(".so")
        for n in names
        if n.endswith(".so")
    }
    assert kept == {"cpu", "cuda126", "cuda128", "cuda130", "cuda132"}
    assert "cuda118" not in record and "rocm64" not in record and "__init__.py" in record

    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target)]
    proc = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (target / "bitsandbytes" / "libbitsandbytes_cuda130.so").exists()
    assert not (target / "bitsandbytes" / "libbitsandbytes_cuda118.so").exists()


def test_check_record_refuses_a_file_that_does_not_match_its_hash(tmp_path):
    kit = load_kit()
    wheel = make_wheel(tmp_path, "bitsandbytes", "0.50.2", {"bitsandbytes/__init__.py": b"x = 1\n"})
    with zipfile.ZipFile(wheel, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("bitsandbytes/__init__.py", b"x = 2\n")  # a changed copy: zipfile reads the last one
    with pytest.raises(SystemExit, match="does not match its RECORD hash"):
        kit.check_record(wheel)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kit"], "--kit needs the folder scripts/gpu-kit wrote"),
        (["--kit", "{empty}"], "no wheels in"),
    ],
    ids=["no-folder", "empty-folder"],
)
def test_gpu_check_kit_refuses_in_one_line_and_writes_nothing(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "results"
    args = [a.replace("{empty}", str(tmp_path / "empty")) for a in args]
    proc = run_gpu_check([*args, "--smoke", str(out)] if len(args) > 1 else args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_gpu_check_puts_the_kit_ahead_of_the_interpreters_own_packages(tmp_path):
    # A stand-in liger-kernel 0.0.1 (the real one is not installed on a CPU machine): the environment
    # report must see it, so the kit's wheels are what the run imports.
    kit = tmp_path / "kit"
    kit.mkdir()
    make_wheel(kit, "liger-kernel", "0.0.1", {"liger_stand_in/__init__.py": b""})
    out = tmp_path / "results"
    proc = run_gpu_check(["--kit", str(kit), "--smoke", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    environment = (out / "environment.txt").read_text().splitlines()
    assert "liger_kernel_version: 0.0.1" in environment and "engine imports: yes" in environment
    assert (out / "gpu_throughput.json").exists()
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("whetstone-gpu-kit.*/liger_stand_in"))
