"""all-MiniLM-L6-v2 on OpenVINO's CPU plugin: the plain ONNX export, fp32 or bfloat16.

OpenVINO reads the export of ``embedding.onnx_runtime`` (``model.onnx``, made on first use
or by ``docingest prepare-embedder``) and compiles it for this CPU. With the ``bf16``
inference precision hint the CPU plugin runs matrix products and attention in bfloat16 on
AMX tiles (or AVX-512 BF16) where the CPU has them, and in float32 where it has not; the
vectors stay within cosine 0.9999 of float32's. The ``bf16`` precision loads an OpenVINO IR
with float16 weights (``model-fp16.xml`` and ``.bin``, converted from the export once, kept
beside it with digests like the ONNX files): the plugin turns them into bfloat16 either way,
and it does not hold the float32 weights, about 100 MB, in memory. At run time only ``openvino``, ``tokenizers``
and numpy are loaded: no PyTorch, transformers or sentence-transformers, which is most of
the difference in resident memory.

The CPU plugin keeps state for every input shape it has run; with shapes free to vary
(any batch size, any length up to 256) a long-running worker's memory grows without end
(measured: +1 GB over 1,000 random shapes). Batch lengths are therefore padded to steps of
32 tokens (8 lengths up to 256) and the plugin's cache is bounded (``RUNTIME_CACHE_SHAPES``).

Inference is the sentence-transformers pipeline of this model (``modules.json``:
Transformer, Pooling(mean), Normalize) done by :class:`OnnxEmbedder`: the model's own
tokenizer truncating at 256 word pieces, inputs sorted by length, padding to the longest of
each batch, mean pooling over the attention mask, L2 normalisation.

OpenVINO is imported by :func:`import_openvino`, with Intel's usage telemetry off: ``import
openvino`` otherwise starts ``openvino_telemetry``, which sends usage events to Google
Analytics from a child process unless the user opted out (``opt_in_out --opt_out``).

References: OpenVINO CPU device, "Precision control" and ``ov::hint::inference_precision``
(docs.openvino.ai, 2026.4).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from docingest.providers.embedding.onnx_runtime import (
    OnnxEmbedder,
    _locked,
    _publish,
    _temp,
    ensure_onnx_model,
    is_valid,
)

__all__ = ["IR_FILES", "OpenVinoEmbedder", "Precision", "ensure_fp16_ir"]

Precision = Literal["f32", "bf16"]
#: Input shapes whose compiled state the CPU plugin keeps, least recently used first out (its
#: default, 5,000, lets the resident set grow by ~1 MB per new shape).
RUNTIME_CACHE_SHAPES = 64
#: the float16 IR: graph, then weights (OpenVINO finds the ``.bin`` by the ``.xml``'s name)
IR_FILES = ("model-fp16.xml", "model-fp16.bin")


def import_openvino() -> Any:
    """The ``openvino`` module, imported with its usage telemetry off.

    OpenVINO's model converter (``openvino.tools.ovc``, imported by ``openvino`` itself) falls
    back to its own no-op stub when ``openvino_telemetry`` cannot be imported; a ``None``
    entry in ``sys.modules`` makes that import fail in this process only (the package stays
    installed, as the ``openvino`` wheel requires it).
    """
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


def ensure_fp16_ir(model_dir: Path, cache_dir: Path) -> Path:
    """The path of a valid float16-weight OpenVINO IR (its ``.xml``), converting the ONNX export.

    Made once under the model directory's lock, as :func:`~docingest.providers.embedding.onnx_runtime.ensure_onnx_model`
    makes the export (which it calls first): written to temporary names, each file's
    SHA-256 recorded, then renamed into place, weights first; a damaged or partial pair is
    made again.

    Raises:
        ImportError: openvino (or torch, for the first export) is not installed.
        OSError: the cache directory cannot be written.
    """
    source = ensure_onnx_model(model_dir, cache_dir, "fp32")
    xml, weights = (source.with_name(name) for name in IR_FILES)
    if is_valid(xml) and is_valid(weights):
        return xml
    with _locked(source.parent / ".lock"):
        if not (is_valid(xml) and is_valid(weights)):
            ov = import_openvino()
            tmp = _temp(xml)  # model-fp16.tmp<pid>.xml; OpenVINO writes model-fp16.tmp<pid>.bin
            try:
                ov.save_model(ov.Core().read_model(str(source)), str(tmp), compress_to_fp16=True)
                _publish(tmp.with_suffix(".bin"), weights)
                _publish(tmp, xml)
            finally:
                tmp.unlink(missing_ok=True)
                tmp.with_suffix(".bin").unlink(missing_ok=True)
    return xml


def _cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OpenVinoEmbedder(OnnxEmbedder):
    """all-MiniLM-L6-v2 on OpenVINO (CPU); one compiled model per process, calls serialized.

    Args:
        model_dir: the packaged sentence-transformers model (``embedding.minilm.model_dir()``).
        cache_dir: where the ONNX export is kept (``DATA_DIR/models``).
        precision: ``f32`` (the same vectors as PyTorch, cosine > 0.99999) or ``bf16``
            (bfloat16 products where the CPU supports them; cosine > 0.9999).
        batch_size: texts per inference, at most; max_batch_tokens: padded tokens per inference,
            at most, which bounds the activations' memory (``onnx_runtime.length_batches``);
            max_tokens: truncation (256 for this model).
        threads: inference threads (0: one per CPU this process may use).

    Raises (on first ``embed``):
        ImportError: openvino (or torch, for a first export) is not installed.
        RuntimeError: OpenVINO cannot read or compile the export.
    """

    def __init__(
        self,
        model_dir: Path,
        cache_dir: Path,
        *,
        precision: Precision = "f32",
        batch_size: int = 32,
        max_batch_tokens: int = 2048,
        max_tokens: int = 256,
        threads: int = 0,
    ) -> None:
        super().__init__(
            model_dir,
            cache_dir,
            variant="fp32",
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_tokens=max_tokens,
            threads=threads,
            pad_multiple=32,
        )
        self.precision = precision

    def _load(self) -> tuple[Any, Any]:
        if self._session is None:
            ov = import_openvino()

            path = (
                ensure_fp16_ir(self.model_dir, self.cache_dir)
                if self.precision == "bf16"
                else ensure_onnx_model(self.model_dir, self.cache_dir, "fp32")
            )
            config = {
                "INFERENCE_PRECISION_HINT": self.precision,
                "INFERENCE_NUM_THREADS": str(self.threads or _cpu_count()),
                "PERFORMANCE_HINT": "LATENCY",  # one request at a time, every thread on it
                "CPU_RUNTIME_CACHE_CAPACITY": str(RUNTIME_CACHE_SHAPES),
            }
            compiled = ov.Core().compile_model(str(path), "CPU", config)
            self._tokenizer = self.tokenizer()
            self._session = compiled.create_infer_request()
        return self._session, self._tokenizer

    def _forward(self, session: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """``last_hidden_state`` ``(batch, seq, 384)`` float32, copied out of the request's buffer."""
        result = session.infer(inputs)
        return np.array(result[0], dtype=np.float32, copy=True)
