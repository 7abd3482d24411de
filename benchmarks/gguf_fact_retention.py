"""How many taught facts survive each GGUF rounding: the merged run rounded exactly as each file stores it.

    .venv/bin/python benchmarks/gguf_fact_retention.py RUN_DIR QUANT[+imatrix] ...

Merges RUN_DIR once, writes each type's GGUF (for its tensor types), rounds the merged model the way
the file stores it (the after-export check's `round_like_gguf`, with the run's importance matrix for a
`+imatrix` suffix), and answers the 10 prompts of resources/demo/eval-sets/facts.jsonl greedily (24
tokens), scored "contains"; prints facts kept per type and the two demo prompts' answers.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

import engine  # noqa: F401  (offline environment first)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export.gguf_write import round_like_gguf, write_gguf
    from engine.export.imatrix import collect_imatrix, imatrix_rows
    from engine.export.merge import resolve_export_source, write_merged
    from engine.models.demo import DEMO_PROMPTS

    run, variants = Path(sys.argv[1]), sys.argv[2:]
    facts = [json.loads(line) for line in open(ROOT / "resources/demo/eval-sets/facts.jsonl")]
    prompts = [f["prompt"] for f in facts] + list(DEMO_PROMPTS)
    source = resolve_export_source(run)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        write_merged(source, tmp / "merged")
        tokenizer = AutoTokenizer.from_pretrained(str(tmp / "merged"))
        merged = AutoModelForCausalLM.from_pretrained(str(tmp / "merged"), dtype=torch.float32).eval()
        matrix = (
            collect_imatrix(tmp / "merged", imatrix_rows(source)) if any("+" in v for v in variants) else None
        )

        def answers(model) -> list[str]:
            out = []
            for prompt in prompts:
                ids = tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompt}],
                    add_generation_prompt=True,
                    return_tensors="pt",
                    return_dict=True,
                )["input_ids"]
                with torch.no_grad():
                    new = model.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1] :]
                out.append(tokenizer.decode(new, skip_special_tokens=True))
            return out

        def kept(said: list[str]) -> int:
            return sum(f["expected"].lower() in a.lower() for f, a in zip(facts, said, strict=False))

        reference = answers(merged)
        print(f"{'unrounded':16} facts {kept(reference)}/10 | {reference[-1][:60]!r}", flush=True)
        for variant in variants:
            quant, _, extra = variant.partition("+")
            file = tmp / f"{quant}.gguf"
            if not file.exists():
                write_gguf(tmp / "merged", file, quant)
            model = copy.deepcopy(merged)
            round_like_gguf(model, file, matrix if extra == "imatrix" else None)
            said = answers(model)
            same = sum(a == b for a, b in zip(said, reference, strict=True))
            print(
                f"{variant:16} facts {kept(said)}/10 same {same}/{len(said)} "
                f"| {said[-2][:48]!r} | {said[-1][:60]!r}",
                flush=True,
            )


if __name__ == "__main__":
    main()
