"""Chat: generation settings, loading a model for chat, streaming replies, the chat server,
saved conversations."""
