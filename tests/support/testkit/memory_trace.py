"""Peak memory of one real training step on the CPU, from the allocator's trace (for the estimate's tests)."""

from __future__ import annotations


def step_peak_bytes(model, batch, warm: bool = False) -> int:
    """Peak bytes of one forward + backward + AdamW step, from the CPU allocator's trace.

    `warm`: measure the second step, as training runs from then on (AdamW's moments, made by the
    first step, are held through the backward pass); their bytes are counted in the peak.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    from engine.training.chunked_loss import model_loss

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    held = 0
    if warm:
        model_loss(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        held = sum(
            t.numel() * t.element_size()
            for state in optimizer.state.values()
            for t in state.values()
            if torch.is_tensor(t) and t.dim() > 0
        )
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model_loss(model, batch).backward()  # as training computes it (chunked, the default)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return held + peak
