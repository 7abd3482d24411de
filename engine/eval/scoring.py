"""One base model in memory with every adapter to compare beside it, and the batched passes over it.

Adapters are peft named adapters on the same 4-bit base (no second copy of the base): `use(None)`
switches them all off for the base's column. Every pass is batched by length (fewer pad tokens),
greedy and deterministic for the same inputs, and checks `cancel` between batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from engine.config import ModelConfig, QuantizationConfig
from engine.data.rendering import IGNORE_INDEX
from engine.models.adapters import AdapterFolder
from engine.models.chat_template import encode_prompt
from engine.models.folder import ModelFolder
from engine.models.loading import end_of_turn_ids, load_model, load_tokenizer

Progress = Callable[[int], None]  # called with the number of items a batch finished


@dataclass(frozen=True)
class AnswerDrift:
    """How far one adapter's next-token distributions moved from the base's on the base's own answer."""

    kl_sum: float  # summed over the answer's tokens
    tokens: int
    changed: bool  # the adapter's greedy choice differs from the base's answer somewhere


def length_batches(lengths: Sequence[int], max_items: int, max_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length: at most `max_items`, at most ~`max_tokens` padded."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max([lengths[j] for j in current] + [lengths[i]])
        if current and (len(current) >= max_items or longest * (len(current) + 1) > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class ScoringModel:
    """The base (4-bit unless configured otherwise) plus named adapters, ready for batched scoring."""

    def __init__(self, model, tokenizer, batch_size: int = 16, max_batch_tokens: int = 4096) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_batch_tokens = batch_size, max_batch_tokens
        self.eos_ids = end_of_turn_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.adapters: dict[str, AdapterFolder] = {}
        self.full_models: dict[str, object] = {}  # name -> a full fine-tuned model beside the base

    @classmethod
    def load(
        cls,
        model_cfg: ModelConfig,
        quant: QuantizationConfig,
        adapters: Sequence[AdapterFolder | ModelFolder],
        device: str | None = None,
        batch_size: int = 16,
    ) -> ScoringModel:
        """Load the base once and every adapter onto it as `adapter-0`, `adapter-1`, …

        A full model (a ModelFolder: a full fine-tuning run's output) cannot ride on the base, so it
        loads as a model of its own under its name, quantized like the base.
        """
        from engine.models.adapters import load_adapter

        tokenizer = load_tokenizer(model_cfg)
        model = load_model(model_cfg, quant, device=device)
        names: dict[str, AdapterFolder] = {}
        full: dict[str, object] = {}
        for i, adapter in enumerate(adapters):
            name = f"adapter-{i}"
            if isinstance(adapter, ModelFolder):
                full[name] = load_model(replace(model_cfg, path=str(adapter.path)), quant, device=device)
                full[name].eval()
                continue
            model = load_adapter(model, adapter, adapter_name=name)
            names[name] = adapter
        model.eval()
        scoring = cls(model, tokenizer, batch_size=batch_size)
        scoring.adapters, scoring.full_models = names, full
        return scoring

    @property
    def device(self):
        return self.model.device

    @contextmanager
    def use(self, adapter: str | None) -> Iterator[None]:
        """Inside, the model is the base (`None`), the base with that one adapter, or that full model."""
        full = self.full_models.get(adapter) if adapter is not None else None
        if full is not None:
            base, self.model = self.model, full
            try:
                yield
            finally:
                self.model = base
            return
        if not self.adapters:
            yield
            return
        if adapter is None:
            with self.model.disable_adapter():
                yield
            return
        self.model.set_adapter(adapter)
        yield

    # ---- encoding

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return encode_prompt(self.tokenizer, messages)["input_ids"][0].tolist()

    def text_ids(self, text: str, special: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        return length_batches(lengths, self.batch_size, self.max_batch_tokens)

    # ---- passes

    def generate(
        self,
        prompts: Sequence[list[int]],
        max_new_tokens: int | Sequence[int],
        done: Progress | None = None,
        cancel: Callable[[], None] | None = None,
    ) -> list[list[int]]:
        """Greedy answers (token ids, cut after the first end-of-turn token) to tokenized prompts.

        `max_new_tokens` may differ per prompt: prompts with the same budget are batched together,
        so a batch of short answers never waits for a long one.
        """
        budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
        answers: list[list[int]] = [[] for _ in prompts]
        for budget in sorted(set(budgets)):
            group = [i for i, b in enumerate(budgets) if b == budget]
            for batch in self._batches([len(prompts[i]) + budget for i in group]):
                if cancel:
                    cancel()
                indices = [group[j] for j in batch]
                for i, ids in zip(
                    indices, self._generate_batch([prompts[i] for i in indices], budget), strict=True
                ):
                    answers[i] = ids
                if done:
                    done(len(batch))
        return answers

    def _generate_batch(self, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        import torch

        longest = max(len(p) for p in prompts)
        ids = [[self.pad_id] * (longest - len(p)) + p for p in prompts]
        mask = [[0] * (longest - len(p)) + [1] * len(p) for p in prompts]
        with torch.no_grad():
            out = self.model.generate(
                input_ids=torch.tensor(ids, device=self.device),
                attention_mask=torch.tensor(mask, device=self.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=self.eos_ids,
                pad_token_id=self.pad_id,
            )
        return [self._cut(row) for row in out[:, longest:].tolist()]

    def _cut(self, row: list[int]) -> list[int]:
        for n, token in enumerate(row):
            if token in self.eos_ids:
                return row[: n + 1]
        return row

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def _forward(self, sequences: Sequence[list[int]], batch: list[int]):
        """Logits of a right-padded batch (float32, on the model's device)."""
        import torch

        longest = max(len(sequences[i]) for i in batch)
        ids = [sequences[i] + [self.pad_id] * (longest - len(sequences[i])) for i in batch]
        mask = [[1] * len(sequences[i]) + [0] * (longest - len(sequences[i])) for i in batch]
        with torch.no_grad():
            out = self.model(
                input_ids=torch.tensor(ids, device=self.device),
                attention_mask=torch.tensor(mask, device=self.device),
            )
        return out.logits.float()

    def continuation_logprobs(
        self,
        pairs: Sequence[tuple[list[int], list[int]]],
        adapter: str | None,
        done: Progress | None = None,
        cancel: Callable[[], None] | None = None,
    ) -> list[float]:
        """log P(continuation | prefix), summed over the continuation's tokens, for each pair."""
        import torch

        sequences = [prefix + cont for prefix, cont in pairs]
        result = [0.0] * len(pairs)
        for batch, logits in self._passes(sequences, adapter, done, cancel):
            for row, i in enumerate(batch):
                prefix, cont = pairs[i]
                start = len(prefix) - 1  # the position that predicts the continuation's first token
                logp = torch.log_softmax(logits[row, start : start + len(cont)], dim=-1)
                target = torch.tensor(cont, device=logp.device).unsqueeze(-1)
                result[i] = float(logp.gather(-1, target).sum())
        return result

    def _passes(self, sequences, adapter: str | None, done: Progress | None, cancel) -> Iterator[tuple]:
        """(batch indices, logits) for every length batch of `sequences` through base or adapter."""
        with self.use(adapter):
            for batch in self._batches([len(s) for s in sequences]):
                if cancel:
                    cancel()
                yield batch, self._forward(sequences, batch)
                if done:
                    done(len(batch))

    def answer_drift(
        self,
        pairs: Sequence[tuple[list[int], list[int]]],
        adapters: Sequence[str],
        done: Progress | None = None,
        cancel: Callable[[], None] | None = None,
    ) -> dict[str, list[AnswerDrift]]:
        """Teacher-forced on the base's answers: KL(base || adapter) per token, and whether greedy changed.

        One forward of the base and one per adapter for each batch; label-free. If the adapter's
        argmax equals the base's at every position of the base's answer, its own greedy answer is
        the same answer, so "changed" needs no generation.
        """
        sequences = [prompt + answer for prompt, answer in pairs]
        drift: dict[str, list[AnswerDrift]] = {name: [] for name in adapters}
        slots: dict[str, list[AnswerDrift | None]] = {name: [None] * len(pairs) for name in adapters}
        for batch in self._batches([len(s) for s in sequences]):
            if cancel:
                cancel()
            with self.use(None):
                base = self._answer_logprobs(sequences, pairs, batch)
            for name in adapters:
                with self.use(name):
                    tuned = self._answer_logprobs(sequences, pairs, batch)
                for row, i in enumerate(batch):
                    p, q = base[row], tuned[row]
                    kl = float((p.exp() * (p - q)).sum()) if p.numel() else 0.0
                    # Against the base's own argmax in this same pass, not the generated tokens: a
                    # near-tie may round differently in batched generation, never between two passes
                    # of identical weights.
                    changed = bool((q.argmax(-1) != p.argmax(-1)).any()) if p.numel() else False
                    slots[name][i] = AnswerDrift(max(kl, 0.0), len(pairs[i][1]), changed)
            if done:
                done(len(batch))
        for name in adapters:
            drift[name] = [d for d in slots[name] if d is not None]
        return drift

    def _answer_logprobs(self, sequences, pairs, batch) -> list:
        import torch

        logits = self._forward(sequences, batch)
        out = []
        for row, i in enumerate(batch):
            prompt, answer = pairs[i]
            start = len(prompt) - 1
            out.append(torch.log_softmax(logits[row, start : start + len(answer)], dim=-1))
        return out

    def mean_loss(
        self,
        rows: Sequence[dict[str, list[int]]],
        adapter: str | None,
        done: Progress | None = None,
        cancel: Callable[[], None] | None = None,
    ) -> tuple[float, int]:
        """Token-weighted cross-entropy on the trained tokens of tokenized rows, and their count."""
        import torch

        sequences = [list(r["input_ids"]) for r in rows]
        total, tokens = 0.0, 0
        for batch, logits in self._passes(sequences, adapter, done, cancel):
            for row, i in enumerate(batch):
                labels = torch.tensor(rows[i]["labels"][1:], device=logits.device)
                keep = labels != IGNORE_INDEX
                if not bool(keep.any()):
                    continue
                logp = torch.log_softmax(logits[row, : len(labels)][keep], dim=-1)
                total -= float(logp.gather(-1, labels[keep].unsqueeze(-1)).sum())
                tokens += int(keep.sum())
        return (total / tokens if tokens else float("nan")), tokens
