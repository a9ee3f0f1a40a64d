"""The ONNX Runtime backends of the local model: exported offline into a cache dir, same vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("sentence_transformers")

from docingest.embedding.local import LocalEmbedder, make_local_embedder

TEXTS = [
    "Multiversion concurrency control lets readers proceed without blocking writers.",
    "The jsonb type stores data in a decomposed binary format.",
    "short",
    " ".join(f"word{i}" for i in range(400)),  # longer than 256 word pieces: truncated alike
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return LocalEmbedder(batch_size=2).embed(TEXTS)


@pytest.mark.parametrize(("backend", "min_cos"), [("onnx", 0.9999), ("onnx-int8", 0.95)])
def test_onnx_backends_match_pytorch(backend: str, min_cos: float, reference: np.ndarray,
                                     tmp_path_factory: pytest.TempPathFactory,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path_factory.mktemp("models")
    emb = make_local_embedder(backend, batch_size=2, cache_dir=cache)
    vectors = emb.embed(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = (vectors * reference).sum(axis=1)
    assert cos.min() > min_cos, cos
    assert list(Path(cache).glob("all-MiniLM-L6-v2-*/*.onnx"))  # exported into the cache dir
    assert emb.embed([]).shape == (0, 384)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown embedding backend"):
        make_local_embedder("tensorrt")
