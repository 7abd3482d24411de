"""Streaming one assistant reply: text chunks, stats, stop strings and cancel between tokens.

`start_reply` runs `model.generate` on a worker thread. A stopping criterion (`_Tap`) sees
every new token right after it is chosen: it counts and timestamps it, decodes the text
incrementally, cuts the text at a stop string, and queues the text that is safe to show.
When it returns True (cancel, or a stop string) generation ends after that token; a cancel
also aborts a forward pass in progress, checked before every decoder layer. Sampling uses
the reply's own `torch.Generator`, so a seed reproduces a reply even while other replies
generate on other threads.

Heavy imports (torch, transformers) happen inside functions: importing this module is cheap.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from engine.chat.settings import GenerationSettings
from engine.models.chat_template import encode_prompt
from engine.models.loading import end_of_turn_ids

STOP_REASONS = ("end_of_turn", "max_tokens", "stop_string", "cancelled", "error")
_END = object()
_HOOKED = "_whetstone_cancel_hooks"
_ACTIVE: dict[int, threading.Event] = {}
"""Cancel event of the reply each generate thread is working on (thread ident -> event)."""


class _CancelledInForward(Exception):
    """Raised between decoder layers to abandon a forward pass the user cancelled."""


def _layer_pre_hook(_module, _args) -> None:
    event = _ACTIVE.get(threading.get_ident())
    if event is not None and event.is_set():
        raise _CancelledInForward


def _install_cancel_hooks(model) -> None:
    """Check for cancel before every decoder layer, not only between tokens.

    On a CPU one token of even a small model can take longer than the 200 ms a Stop button
    may take; a layer is ~1/30 of that. The hook only acts in threads running a reply, so
    training or other callers of the same model are unaffected. Installed once per model.
    """
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m)]
    if not lists:
        return
    layers = max(lists, key=len)  # the decoder's stack of layers
    if getattr(layers, _HOOKED, False):
        return
    for layer in layers:
        layer.register_forward_pre_hook(_layer_pre_hook)
    setattr(layers, _HOOKED, True)


@dataclass
class ReplyStats:
    prompt_tokens: int
    new_tokens: int
    """Tokens generated, the final end-of-turn token included."""
    time_to_first_token_s: float | None
    """From `start_reply` until the first non-empty chunk was ready; None if none was."""
    seconds: float
    """From `start_reply` until generation ended."""
    tokens_per_second: float | None
    """Decode speed: tokens after the first / time after the first token (None under 2 tokens)."""
    stop_reason: str
    """end_of_turn | max_tokens | stop_string | cancelled | error"""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StopStringFilter:
    """Passes text through, holding back a tail that could still become a stop string.

    `feed` returns the text that is safe to show; after a stop string is seen it returns
    only the text before it and `stopped` is True. `flush` releases the held-back tail.
    """

    def __init__(self, stop_strings: list[str]) -> None:
        self.stop_strings = [s for s in stop_strings if s]
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stop_strings) if i >= 0]
        if hits:
            self.stopped = True
            out, self.pending = self.pending[: min(hits)], ""
            return out
        keep = self._tail_length()
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out

    def _tail_length(self) -> int:
        """Length of the longest end of `pending` that is the start of some stop string."""
        longest = 0
        for stop in self.stop_strings:
            for n in range(min(len(stop) - 1, len(self.pending)), longest, -1):
                if self.pending.endswith(stop[:n]):
                    longest = n
                    break
        return longest


class IncrementalDecoder:
    """Token ids in, new text out, without re-decoding the whole reply at every token.

    Decodes a small window (the previous token(s) + the new ones) so tokenizers that merge
    spaces or bytes across tokens come out right; holds text back while it ends in an
    incomplete UTF-8 sequence (U+FFFD).
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int, final: bool = False) -> str:
        self.ids.append(token_id)
        return self._delta(final)

    def flush(self) -> str:
        return self._delta(final=True)

    def _delta(self, final: bool) -> str:
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""


class _Tap:
    """Stopping criterion that sees each new token first (see the module docstring)."""

    def __init__(self, stream: ReplyStream, tokenizer, prompt_len: int, settings: GenerationSettings):
        self.stream = stream
        self.decoder = IncrementalDecoder(tokenizer)
        self.filter = StopStringFilter(settings.stop_strings)
        self.prompt_len = prompt_len
        self.new_tokens = 0
        self.last_token: int | None = None
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.cancelled = False

    def __call__(self, input_ids, scores, **kwargs) -> bool:
        now = time.perf_counter()
        self.new_tokens = input_ids.shape[-1] - self.prompt_len
        self.last_token = int(input_ids[0, -1])
        self.first_token_at = self.first_token_at or now
        self.last_token_at = now
        self.stream._emit(self.filter.feed(self.decoder.add(self.last_token)))
        if self.filter.stopped:
            return True
        if self.stream._cancel.is_set():
            self.cancelled = True
            return True
        return False

    def finish(self) -> None:
        self.stream._emit(self.filter.feed(self.decoder.flush()))
        self.stream._emit(self.filter.flush())


class _Sampler:
    """Temperature / top-k / top-p sampling with this reply's own random generator.

    Runs last among the logits processors (after repetition penalty and min_new_tokens) and
    leaves only the sampled token possible, so generate's greedy pick takes it.
    """

    def __init__(self, settings: GenerationSettings) -> None:
        from transformers.generation.logits_process import (
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        self.seed = settings.seed
        self.generator = None
        self.warpers = [TemperatureLogitsWarper(float(settings.temperature))]
        if settings.top_k:
            self.warpers.append(TopKLogitsWarper(int(settings.top_k)))
        if settings.top_p < 1:
            self.warpers.append(TopPLogitsWarper(float(settings.top_p)))

    def __call__(self, input_ids, scores):
        import torch

        if self.generator is None:
            self.generator = torch.Generator(device=scores.device)
            if self.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(self.seed)
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        choice = torch.multinomial(probs, num_samples=1, generator=self.generator)
        return torch.full_like(scores, float("-inf")).scatter_(1, choice, 0.0)


class ReplyStream:
    """Iterate for the reply's text chunks (once); `stats` is set when the iteration ends.

    `cancel()` may be called from any thread: generation stops after the current token and
    the iteration ends with `stats.stop_reason == "cancelled"`. Leaving the iteration early
    cancels too. An exception in generation is raised from the iteration.
    """

    def __init__(self, cancel: threading.Event | None = None) -> None:
        self._cancel = cancel or threading.Event()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._started_at = time.perf_counter()
        self._first_chunk_at: float | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._read = False
        self.stats: ReplyStats | None = None
        self.text = ""
        """The text delivered so far (what the iteration has yielded)."""

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def done(self) -> bool:
        return self.stats is not None

    def _emit(self, chunk: str) -> None:
        if chunk:
            if self._first_chunk_at is None:
                self._first_chunk_at = time.perf_counter()
            self._queue.put(chunk)

    def __iter__(self) -> Iterator[str]:
        if self._read:
            raise RuntimeError("A reply stream can be read only once.")
        self._read = True
        try:
            while (item := self._queue.get()) is not _END:
                self.text += item
                yield item
        finally:
            if self._thread is not None:
                if self._thread.is_alive():  # the reader stopped early: stop generating too
                    self._cancel.set()
                self._thread.join()
        if self._error is not None:
            raise self._error


def start_reply(
    model,
    tokenizer,
    messages: list[dict[str, Any]],
    settings: GenerationSettings | None = None,
    cancel: threading.Event | None = None,
) -> ReplyStream:
    """Start generating the assistant's reply to `messages` on a worker thread.

    Messages are role/content dicts (extra keys such as "stats" are ignored). The prompt is
    the chat template with the generation prompt added; every end-of-turn token ends the reply.
    """
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    settings = settings or GenerationSettings()
    settings.validate()
    stream = ReplyStream(cancel)
    inputs = encode_prompt(tokenizer, messages).to(model.device)
    prompt_len = int(inputs["input_ids"].shape[-1])
    tap = _Tap(stream, tokenizer, prompt_len, settings)
    eos_ids = end_of_turn_ids(tokenizer, model)
    kwargs: dict[str, Any] = dict(
        **inputs,
        max_new_tokens=settings.max_new_tokens,
        do_sample=False,  # sampling, when asked for, is done by _Sampler with its own generator
        temperature=None,
        top_p=None,
        top_k=None,
        repetition_penalty=settings.repetition_penalty,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        stopping_criteria=StoppingCriteriaList([tap]),
    )
    if settings.min_new_tokens:
        kwargs["min_new_tokens"] = settings.min_new_tokens
    if settings.sampling:
        kwargs["logits_processor"] = LogitsProcessorList([_Sampler(settings)])

    _install_cancel_hooks(model)

    def run() -> None:
        reason = "error"
        _ACTIVE[threading.get_ident()] = stream._cancel
        try:
            try:
                with torch.no_grad():
                    model.generate(**kwargs)
            except _CancelledInForward:
                tap.cancelled = True
            if tap.filter.stopped:
                reason = "stop_string"
            elif tap.cancelled or (stream._cancel.is_set() and tap.new_tokens == 0):
                reason = "cancelled"
            elif tap.last_token in eos_ids:
                reason = "end_of_turn"
            else:
                reason = "max_tokens"
            tap.finish()
        except BaseException as exc:  # raised again in the reader's thread
            stream._error = exc
        finally:
            _ACTIVE.pop(threading.get_ident(), None)
            end = time.perf_counter()
            first, last = tap.first_token_at, tap.last_token_at
            speed = None
            if first is not None and last is not None and tap.new_tokens > 1 and last > first:
                speed = (tap.new_tokens - 1) / (last - first)
            ttft = None if stream._first_chunk_at is None else stream._first_chunk_at - stream._started_at
            stream.stats = ReplyStats(
                prompt_len, tap.new_tokens, ttft, end - stream._started_at, speed, reason
            )
            stream._queue.put(_END)

    stream._thread = threading.Thread(target=run, name="whetstone-generate", daemon=True)
    stream._thread.start()
    return stream
