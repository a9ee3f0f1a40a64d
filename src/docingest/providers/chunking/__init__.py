"""Chunking: Markdown-aware chunks sized by the embedding model's own tokenizer (``Chunker``).

Imports the foundation only; the tokenizer file is given by the caller.
"""
