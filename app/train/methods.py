"""training.method in the setup's words: each method's name, when to use it, and the settings it uses.

The engine's field docstring says what each method is (the tooltip's last paragraph); this adds the
choice a user makes in the list: which method for which data and goal.
"""

from __future__ import annotations

NAMES = {
    "sft": "SFT: supervised (LoRA)",
    "dpo": "DPO: preference pairs (LoRA)",
    "orpo": "ORPO: pairs, no reference (LoRA)",
    "kto": "KTO: replies rated good/bad (LoRA)",
    "full": "Full fine-tuning (small models)",
    "prompt_tuning": "Prompt tuning (lightest)",
}
WHEN = {
    "sft": "Start here. Teaches the model from example conversations (only the replies are trained), "
    "or continues its pre-training on raw text (every token is trained). 4-bit base + LoRA adapter.",
    "dpo": "The usual step after SFT: teaches which of two answers is better, from pairs (prompt, chosen, "
    "rejected), e.g. picked in the Chat tab's compare mode. Set “Start from adapter” to your SFT run to "
    "build on it; beta keeps the model close to where it started.",
    "orpo": "Pairs too, but SFT and preference in one run with no reference pass: faster and lighter than "
    "DPO, for pairs without an SFT run first.",
    "kto": "For single replies rated good or bad (thumbs up/down in the chat) instead of pairs; pairs work "
    "too. Needs no matched pairs, so the data is easier to collect.",
    "full": "Every weight trains (or the chosen layers), in 16 bits: the strongest change, for small models "
    "only (see “Will it fit?”). The run writes a whole model folder instead of an adapter.",
    "prompt_tuning": "Learns a few virtual tokens put in front of every prompt: the least memory and the "
    "smallest file, for steering format or style; weaker than LoRA at teaching new content.",
}
# The settings each method uses besides the common ones (others are hidden while it is chosen).
USES = {
    "training.preference_beta": ("dpo", "orpo", "kto"),
    "training.dpo_loss": ("dpo",),
    "training.init_adapter": ("sft", "dpo", "orpo", "kto"),
    "training.prompt_tuning_tokens": ("prompt_tuning",),
    "training.full_layers": ("full",),
}
# Setting groups a method does not use at all (full and prompt tuning train no LoRA adapter).
UNUSED_GROUPS = {"full": ("lora",), "prompt_tuning": ("lora",)}

CONTINUED_PRETRAINING = "Continued pre-training: the loss is on every token of the text."
CONTINUED_PRETRAINING_TIP = (
    "This dataset is raw text, so SFT trains on all of it, every token, as in the model's "
    "pre-training: for teaching a domain's language and facts from documents. Conversations train "
    "only the replies. A chat model may chat less well afterwards: a short SFT run on conversations "
    "that starts from this run's adapter (“Start from adapter”) brings that back."
)


def method_tooltip(method: str, field_help: str) -> str:
    """The method list's tooltip: when to use the chosen method, then every method in one line."""
    lines = [f"<b>{NAMES.get(method, method)}</b>: {WHEN.get(method, '')}", "<br><br>"]
    lines += [f"<b>{m}</b>: {when}<br>" for m, when in WHEN.items() if m != method]
    if field_help:
        lines.append(f"<br><i>{field_help}</i>")
    return "".join(lines)


def shown(dotted: str, method: str) -> bool:
    """Whether the setting `dotted` applies to `method`."""
    group = dotted.split(".", 1)[0]
    if group in UNUSED_GROUPS.get(method, ()):
        return False
    return method in USES.get(dotted, (method,))
