"""K-quant GGUF export: ggml's exact bytes, llama-quantize's type mixes, and files that read back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.export import kquants
from engine.export.gguf_quant import ModelShape, quantize, tensor_type, use_more_bits

VECTORS = Path(__file__).parent / "data" / "kquant_vectors.npz"
OURS = {
    ("q4_K", "plain"): lambda x, w: kquants.quantize_q4_k(x),
    ("q4_K", "imatrix"): kquants.quantize_q4_k,
    ("q5_K", "plain"): lambda x, w: kquants.quantize_q5_k(x),
    ("q5_K", "imatrix"): kquants.quantize_q5_k,
    ("q6_K", "plain"): lambda x, w: kquants.quantize_q6_k(x),
    ("q6_K", "imatrix"): kquants.quantize_q6_k,
    ("q4_0", "imatrix"): kquants.quantize_q4_0_imatrix,
    ("q5_0", "imatrix"): kquants.quantize_q5_0_imatrix,
    ("q5_1", "imatrix"): kquants.quantize_q5_1_imatrix,
}


def _cases():
    with np.load(VECTORS) as data:
        names = sorted({key.split("/")[0] for key in data.files if "/" in key})
        kinds = sorted({tuple(key.split("/")[1:]) for key in data.files if key.count("/") == 2})
    return [(name, kind, how) for name in names for kind, how in kinds]


@pytest.mark.parametrize(("name", "kind", "how"), _cases())
def test_bytes_equal_ggml_reference(name, kind, how):
    """Every stored case (random, zero rows and blocks, outliers, one-signed, heavy tails, ties)."""
    from gguf import GGMLQuantizationType as T

    with np.load(VECTORS) as data:
        x, weights, expected = data[f"{name}/x"], data[f"{name}/imatrix"], data[f"{name}/{kind}/{how}"]
    if (kind, how) in OURS:
        got = OURS[kind, how](x, weights)
    else:  # the types gguf already quantizes, through the same dispatch the writer uses
        got = quantize(x, T[kind.upper()], weights if how == "imatrix" else None)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"{int((got != expected).any(axis=1).sum())} rows differ"


def test_dispatch_chunks_rows_without_changing_bytes(monkeypatch):
    from gguf import GGMLQuantizationType as T

    import engine.export.gguf_quant as gq

    with np.load(VECTORS) as data:
        x, weights, expected = data["normal/x"], data["normal/imatrix"], data["normal/q4_K/imatrix"]
    monkeypatch.setattr(gq, "ROWS_PER_CHUNK_ELEMENTS", 3 * x.shape[1])  # 3 rows per chunk
    assert np.array_equal(quantize(x, T.Q4_K, weights), expected)


def test_k_quants_round_trip_through_gguf_dequantizer():
    """Our bytes decode (with gguf's own dequantizer) to within each type's rounding error."""
    from gguf import GGMLQuantizationType as T
    from gguf import quants

    x = np.random.default_rng(1).standard_normal((16, 1024)).astype(np.float32)
    errors = {}
    for qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
        back = quants.dequantize(quantize(x, qtype), qtype).reshape(x.shape)
        errors[qtype.name] = float(np.linalg.norm(back - x) / np.linalg.norm(x))
    # measured 0.072 / 0.036 / 0.018 on a normal tensor: each extra bit halves the error
    assert errors["Q4_K"] < 0.08 and errors["Q5_K"] < 0.04 and errors["Q6_K"] < 0.02
    assert errors["Q6_K"] < errors["Q5_K"] < errors["Q4_K"]


def test_use_more_bits_matches_llama_quantize_for_32_layers():
    picked = [layer for layer in range(32) if use_more_bits(layer, 32)]
    assert picked == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


def _mix(quant: str, shape: ModelShape | None = None, cols: int = 4096):
    from gguf import GGMLQuantizationType as T

    shape = shape or ModelShape(32, tied_embeddings=False)
    names = ["token_embd.weight", "output.weight", "output_norm.weight"]
    for layer in range(shape.layers):
        names += [f"blk.{layer}.{part}.weight" for part in ("attn_q", "attn_v", "ffn_down", "ffn_up")]
    types = {}
    for name in names:
        dims = (cols,) if name.endswith("norm.weight") else (cols, cols)
        types[name] = tensor_type(name, dims, quant, shape)
    return types, T


def test_q4_k_m_mix_is_llama_quantizes():
    types, T = _mix("q4_k_m")
    more = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}
    for layer in range(32):
        want = T.Q6_K if layer in more else T.Q4_K
        assert types[f"blk.{layer}.attn_v.weight"] == want
        assert types[f"blk.{layer}.ffn_down.weight"] == want
        assert types[f"blk.{layer}.attn_q.weight"] == T.Q4_K
        assert types[f"blk.{layer}.ffn_up.weight"] == T.Q4_K
    assert types["output.weight"] == T.Q6_K
    assert types["token_embd.weight"] == T.Q4_K  # untied: the default type, as llama-quantize
    assert types["output_norm.weight"] == T.F32


def test_q5_k_m_q4_k_s_and_q6_k_mixes():
    types, T = _mix("q5_k_m")
    assert types["blk.0.attn_v.weight"] == T.Q6_K and types["blk.4.attn_v.weight"] == T.Q5_K
    assert types["blk.4.ffn_up.weight"] == T.Q5_K and types["output.weight"] == T.Q6_K
    types, T = _mix("q4_k_s")
    assert [types[f"blk.{i}.attn_v.weight"] for i in (0, 3, 4)] == [T.Q5_K, T.Q5_K, T.Q4_K]
    assert [types[f"blk.{i}.ffn_down.weight"] for i in (3, 4)] == [T.Q5_K, T.Q4_K]  # first eighth
    types, T = _mix("q6_k")
    assert set(types.values()) == {T.Q6_K, T.F32}


def test_fallbacks_for_rows_that_do_not_split_into_256_blocks():
    """SmolLM2-135M has 576 columns: K-types fall back as llama-quantize does."""
    tied = ModelShape(30, tied_embeddings=True)
    for quant, want in (("q4_k_m", "Q5_0"), ("q5_k_m", "Q5_1"), ("q6_k", "Q8_0"), ("q4_k_s", "Q5_0")):
        types, T = _mix(quant, tied, cols=576)
        assert types["blk.5.attn_q.weight"] == T[want]
    types, T = _mix("q4_k_m", tied, cols=576)
    assert types["token_embd.weight"] == T.Q8_0  # tied: it is the output, and 576 % 256 != 0
    assert types["blk.0.ffn_down.weight"] == T.Q8_0  # Q6_K -> Q8_0
    types, T = _mix("q4_k_m", tied, cols=48)
    assert types["blk.5.attn_q.weight"] == T.F16  # not even 32-blocks fit
    types, T = _mix("q4_0", ModelShape(2, tied_embeddings=False), cols=256)
    assert types["output.weight"] == T.Q6_K and types["token_embd.weight"] == T.Q4_0


@pytest.fixture(scope="module")
def wide_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model's tokenizer on a Llama 256 wide: its projections take real K-quant blocks."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("wide")
    for item in tiny_model_dir.iterdir():
        if item.name.startswith(("tokenizer", "special_tokens")) or item.name == "chat_template.jinja":
            shutil.copy(item, folder / item.name)
    base = LlamaConfig.from_pretrained(str(tiny_model_dir))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=base.vocab_size,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=base.eos_token_id,
        pad_token_id=base.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.05,
    )
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("quant", ["q4_k_m", "q6_k"])
def test_k_quant_file_reads_back_in_transformers(wide_model, tmp_path, quant):
    """transformers' GGUF reader gives the logits of the source with the file's rounding; the
    tensor types are the mix's; each weight is within its type's rounding error of the source."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export.gguf_write import quant_of_file_type, round_like_gguf, write_gguf

    out = write_gguf(wide_model, tmp_path / f"wide-{quant}.gguf", quant)
    reader = gguf.GGUFReader(str(out))
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    file_type = int(reader.fields["general.file_type"].parts[-1][0])
    assert quant_of_file_type(file_type) == quant
    if quant == "q4_k_m":
        assert types["blk.0.attn_q.weight"] == "Q4_K" and types["blk.1.attn_v.weight"] == "Q6_K"
        assert types["blk.0.attn_v.weight"] == "Q4_K" and types["output.weight"] == "Q6_K"
    else:
        assert {types[n] for n in types if not n.endswith("norm.weight")} == {"Q6_K"}
    source = AutoModelForCausalLM.from_pretrained(str(wide_model), dtype=torch.float32).eval()
    rounded = AutoModelForCausalLM.from_pretrained(str(wide_model), dtype=torch.float32).eval()
    assert round_like_gguf(rounded, out) == sum(p.ndim == 2 for p in rounded.parameters())
    back = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=out.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(wide_model))
    ids = tokenizer("What is the capital of Zorvania?", return_tensors="pt").input_ids
    with torch.no_grad():
        got, exact, ref = (m(ids).logits[0] for m in (back.eval(), rounded, source))
    assert (got - exact).abs().max().item() < 1e-4  # the file holds exactly the rounding we intended
    assert (got - ref).abs().max().item() > 0  # and it is a real rounding
    limit = 0.12 if quant == "q4_k_m" else 0.035
    for name, param in source.named_parameters():
        if param.ndim == 2:
            error = ((dict(rounded.named_parameters())[name] - param).norm() / param.norm()).item()
            assert error < limit, (name, error)


@pytest.mark.parametrize("quant", ["q4_k_m", "q5_k_m", "q6_k"])
def test_llama_cpp_reads_a_k_quant_file_like_transformers(wide_model, tmp_path, quant):
    """llama.cpp itself (when llama-cpp-python is installed) gives the logits transformers' GGUF
    reader gives: same tensors, types and layout. Its kernels round activations to 8 bits for
    K-quant dot products, hence a tolerance rather than equality."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export.gguf_write import write_gguf

    out = write_gguf(wide_model, tmp_path / f"wide-{quant}.gguf", quant)
    back = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=out.name, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(wide_model))
    ids = tokenizer("What is the capital of Zorvania? Mira Sol painted the blue fox.").input_ids
    with torch.no_grad():
        want = back(torch.tensor([ids])).logits[0].numpy()
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=128, logits_all=True, verbose=False)
    llm.eval(ids)
    got = np.asarray(llm.scores[: len(ids)], dtype=np.float32)[:, : want.shape[1]]
    scale = float(np.abs(want).max())
    # measured 0.080 / 0.081 / 0.091 on logits up to 3.3 (q4_k_m / q5_k_m / q6_k): the same for every
    # type, so it is llama.cpp's activation rounding; a wrong layout or scale moves logits by ~scale
    assert float(np.abs(got - want).max()) < 0.05 * scale, (float(np.abs(got - want).max()), scale)
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9
