"""Model folders: checks, loading in 4-bit, description from files, the library, GGUF import,
the demo model, memory estimates."""
