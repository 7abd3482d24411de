"""Training a run: the recipe (setup, train, save), callbacks, LoRA, data-parallel launch, presets,
fit check, cluster bundle."""
