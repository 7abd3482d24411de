"""bitsandbytes' native library: loaded here, and a one-line refusal on CUDA when it is not."""

from __future__ import annotations

import pytest
from bitsandbytes import cextension

from engine.config import ModelConfig, QuantizationConfig
from engine.errors import ModelError
from engine.util.bnb_library import cuda_kernels_problem, native_library

MISSING = "libcudart.so.13: cannot open shared object file: No such file or directory"


@pytest.fixture
def broken_cuda_library(monkeypatch):
    """What bitsandbytes puts in place of a CUDA library that did not load (its own stand-in)."""
    monkeypatch.setattr(cextension, "BNB_BACKEND", "CUDA")
    monkeypatch.setattr(cextension, "lib", cextension.ErrorHandlerMockBNBNativeLibrary(MISSING + "\nmore"))


def test_this_machine_loaded_its_library():
    backend, loaded, error = native_library()
    assert backend == "CPU" and loaded.startswith("libbitsandbytes_cpu") and error == ""
    assert cuda_kernels_problem() is None


def test_a_library_that_did_not_load_is_named_in_one_line(broken_cuda_library):
    assert native_library() == ("CUDA", None, MISSING)
    problem = cuda_kernels_problem()
    assert problem.startswith("bitsandbytes could not load its CUDA library for CUDA ")
    assert problem.endswith(f": {MISSING}") and "\n" not in problem


def test_a_4bit_load_on_cuda_is_refused_before_anything_loads(broken_cuda_library, tiny_model_dir):
    from engine.models.loading import load_model

    with pytest.raises(ModelError) as refused:
        load_model(ModelConfig(path=str(tiny_model_dir)), QuantizationConfig(), device="cuda")
    assert refused.value.message.endswith(f"{MISSING}.")
    assert "whetstone-engine diagnostics" in refused.value.hint
