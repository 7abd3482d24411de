"""training.activation_offload: keep what the backward pass needs in CPU memory instead of on the GPU.

Between a layer's forward and its backward, autograd keeps the tensors the backward needs; for a
long context they are most of a step's GPU memory. torch's `save_on_cpu` moves each one to pinned
CPU memory when it is saved and back when the backward uses it: the same values (the results are
bit-identical), far less GPU memory, and steps slower by the copies. It is an alternative to
gradient checkpointing, not an addition: non-reentrant checkpointing keeps each layer's inputs
itself (not through saved-tensor hooks), so with it on little moves (the memory estimate counts
no saving). On the CPU the activations are already in RAM: the setting changes nothing there and
stays off.
"""

from __future__ import annotations

import contextlib

OFFLOAD_METHODS = ("sft", "full")  # the methods trained by the engine's own Trainer (TRL's trainers not)


def activation_offload_plan(setting: bool, device: str, method: str) -> tuple[bool, str]:
    """(offload?, why) for training.activation_offload on a device and with a method."""
    if not setting:
        return False, "training.activation_offload = false"
    if device != "cuda":
        return False, f"on the {device.upper()} the activations are already in RAM"
    if method not in OFFLOAD_METHODS:
        return False, f"{method} runs train through TRL's trainer, which the offload does not reach"
    return True, "saved activations wait in pinned CPU memory between forward and backward"


def offloading(on: bool, device: str):
    """The context a training step runs in: torch's save_on_cpu when offloading, else nothing."""
    if not on:
        return contextlib.nullcontext()
    import torch

    return torch.autograd.graph.save_on_cpu(pin_memory=device == "cuda")
