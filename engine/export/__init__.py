"""Exporting a fine-tuned run: merged 16-bit folders, GGUF files, Ollama Modelfiles,
and the after-export check."""
