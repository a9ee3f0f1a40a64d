"""all-MiniLM-L6-v2 exported to ONNX from the packaged weights; run on ONNX Runtime, optionally int8.

Why not sentence-transformers' own ``backend="onnx"``: it needs optimum-onnx,
whose 0.1.0 pins transformers < 4.58 while sentence-transformers 6 needs 5.x.
So docingest does the three steps itself, with no hub access:

1. export: ``torch.onnx.export`` (TorchScript exporter, opset 17) of the
   packaged ``BertModel`` (eager attention) to ``model.onnx``; inputs
   ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, ``(batch, seq)``),
   output ``last_hidden_state`` (float32, ``(batch, seq, 384)``); the OpenVINO
   backends (``embedding.openvino_runtime``) read this file;
2. fuse: ``onnxruntime.transformers.optimizer`` (BERT attention, LayerNorm, GELU
   fusions) to ``model-opt.onnx``;
3. quantize (``onnx-int8``): ``onnxruntime.quantization.quantize_dynamic`` of
   the unfused export: int8 weights per channel, uint8 activations scaled at
   run time, on the MatMul nodes only (embedding tables, LayerNorm and softmax
   stay fp32) to ``model-int8.onnx``. Measured here (``python -m bench embedders``,
   1,200 corpus chunks) against PyTorch: mean cosine 0.992, min 0.984; in a trial,
   per-tensor weights fell to 0.92 and quantizing the fused graph was no better.

The files go to ``cache_dir/all-MiniLM-L6-v2-<sha256 of the weights, 12 hex>/``
(``DATA_DIR/models`` in production) on first use, or ahead of time with
:func:`ensure_onnx_model` (``docingest prepare-embedder``). Safe under concurrent
first uses and crashes:

- each file is written to a temporary name and renamed into place (atomic);
- its SHA-256 is recorded beside it (``<file>.sha256``, written before the rename),
  and every load checks the file against it, so a truncated, partial or damaged
  file (or one left by a version that kept no digest) is detected and made again;
- making a file holds an exclusive ``flock`` on ``<dir>/.lock``: of several worker
  processes starting at once, one exports and the others wait, then load its file;
  temporary files of a process that died mid-export are removed under the lock. Inference: the model's own
``tokenizer.json`` (truncation at 256 word pieces, padding to the longest in
the batch), inputs sorted by length before batching, mean pooling over the
attention mask, L2 normalisation: the same steps as the sentence-transformers
pipeline of this model (``modules.json``: Transformer, Pooling(mean), Normalize).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from docingest.heap import trim_heap
from docingest.providers.embedding.base import Embedder
from docingest.providers.embedding.minilm import offline_environment

log = logging.getLogger("docingest.providers.embedding.onnx")

Variant = Literal["fp32", "opt", "int8"]
FILES = {"fp32": "model.onnx", "opt": "model-opt.onnx", "int8": "model-int8.onnx"}
EXPORT_VERSION = 2  # bump when the export recipe changes: a new cache directory is made


def _sha256(path: Path, prefix: bytes = b"") -> str:
    h = hashlib.sha256(prefix)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _weights_digest(model_dir: Path) -> str:
    return _sha256(model_dir / "model.safetensors", f"v{EXPORT_VERSION}".encode())[:12]


def _temp(out: Path) -> Path:
    """A temporary name beside ``out`` for this process (``model.onnx`` -> ``model.tmp1234.onnx``)."""
    return out.with_name(f"{out.stem}.tmp{os.getpid()}{out.suffix}")


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _publish(tmp: Path, out: Path) -> None:
    """Record the SHA-256 of ``tmp`` beside ``out``, then rename ``tmp`` onto ``out`` (atomic)."""
    side = _digest_path(out)
    side_tmp = _temp(side)
    side_tmp.write_text(_sha256(tmp) + "\n")
    os.replace(side_tmp, side)
    os.replace(tmp, out)


def is_valid(path: Path) -> bool:
    """True when ``path`` exists and its SHA-256 is the one recorded when it was written.

    False for a missing file, a missing or unreadable digest, and a truncated or
    altered file; never raises for those.
    """
    try:
        expected = _digest_path(path).read_text().strip()
        return bool(expected) and _sha256(path) == expected
    except OSError:
        return False


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def export_onnx(model_dir: Path, out: Path) -> None:
    """Export the packaged model's encoder to ONNX (fp32) at ``out`` (written atomically).

    Uses torch and transformers (the ``local`` extra), offline: nothing is downloaded.

    Raises:
        ImportError: torch or transformers is not installed.
    """
    offline_environment()
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.randint(1000, 20000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 9:] = 0
    names = ["input_ids", "attention_mask", "token_type_ids"]
    tmp = _temp(out)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow in transformers
        torch.onnx.export(
            Encoder(model),
            (ids, mask, torch.zeros_like(ids)),
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
        )
    _publish(tmp, out)


def optimize_onnx(src: Path, out: Path, *, num_heads: int = 12, hidden_size: int = 384) -> None:
    """Fuse attention, LayerNorm and GELU with ONNX Runtime's BERT optimizer (fp32, same maths).

    ``src`` is the fp32 export; ``out`` is written atomically, with its digest.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    tmp = _temp(out)
    optimize_model(
        str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=1
    ).save_model_to_file(str(tmp))
    _publish(tmp, out)


def quantize_int8(src: Path, out: Path) -> None:
    """Dynamic int8 quantization (per-channel int8 weights) of the MatMul nodes of ``src``.

    ``out`` is written atomically, with its digest.
    """
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _temp(out)
    quantize_dynamic(
        str(src),
        str(tmp),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    _publish(tmp, out)


def _remove(path: Path) -> None:
    """Delete an ONNX file and its digest (either may be absent)."""
    path.unlink(missing_ok=True)
    _digest_path(path).unlink(missing_ok=True)


def ensure_onnx_model(model_dir: Path, cache_dir: Path, variant: Variant = "fp32") -> Path:
    """The path of a valid ``variant`` ONNX file, exporting/optimizing/quantizing what is missing.

    ``fp32`` is the plain export (``model.onnx``), which the OpenVINO backends read; ``opt`` and
    ``int8`` are made from it (from a scratch export, removed once the variant is made, when no
    valid ``model.onnx`` is there: each backend's first use writes only its own file). A file
    that fails :func:`is_valid` (absent, partial, damaged) is made again, under the directory's
    lock; a caller that finds a valid file takes no lock.

    Raises:
        ImportError: when torch/transformers (export) or onnxruntime (``opt``, ``int8``) are not
            installed.
        OSError: the cache directory cannot be written.
    """
    target = cache_dir / f"all-MiniLM-L6-v2-{_weights_digest(model_dir)}"
    path = target / FILES[variant]
    fp32 = target / FILES["fp32"]
    if is_valid(path):
        return path
    with _locked(target / ".lock"):
        for stale in target.glob("*.tmp*"):  # left by a process that died mid-export
            stale.unlink(missing_ok=True)
        if variant == "fp32":
            if not is_valid(fp32):
                log.info("exporting all-MiniLM-L6-v2 to ONNX in %s (first use)", target)
                export_onnx(model_dir, fp32)
        elif not is_valid(path):
            # The plain export is only the variant's source: a valid model.onnx serves, else
            # a scratch export (``*.tmp*``: removed if this process dies).
            source = fp32 if is_valid(fp32) else target / f"model-export.tmp{os.getpid()}.onnx"
            if source != fp32:
                log.info("exporting all-MiniLM-L6-v2 to ONNX in %s (first use)", target)
                export_onnx(model_dir, source)
            try:
                (optimize_onnx if variant == "opt" else quantize_int8)(source, path)
            finally:
                if source != fp32:
                    _remove(source)
        source_json = target / "source.json"
        tmp = _temp(source_json)
        tmp.write_text(json.dumps({"model_dir": str(model_dir), "export_version": EXPORT_VERSION}))
        os.replace(tmp, source_json)
    return path


def padded_length(longest: int, multiple: int, cap: int) -> int:
    """``longest`` rounded up to a multiple of ``multiple``, at most ``cap`` (and at least ``longest``)."""
    return max(longest, min(-(-longest // multiple) * multiple, cap))


def length_batches(
    lengths: list[int],
    *,
    max_batch: int,
    max_batch_tokens: int,
    sort_by_length: bool = True,
    pad_multiple: int = 1,
    max_length: int = 256,
) -> list[np.ndarray]:
    """Indices of ``lengths`` (token counts) cut into batches for a padded forward pass.

    Sorted longest first (stable), so a batch pads to its first member's length; a batch holds
    at most ``max_batch`` texts and at most ``max_batch_tokens`` padded tokens (its count times
    its longest length as :func:`padded_length` pads it to a multiple of ``pad_multiple`` within
    ``max_length``, the model's truncation; at least one text), which bounds the
    activations of one pass: short texts go in large batches, long ones in small. This is the
    token budget of Hugging Face's text-embeddings-inference (``--max-batch-tokens``).
    Unsorted, batches keep input order.
    """
    order = np.argsort([-n for n in lengths], kind="stable") if sort_by_length else np.arange(len(lengths))
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end, longest = start, 0
        while end < len(order) and end - start < max_batch:
            longest_with = max(longest, lengths[order[end]])
            padded = padded_length(longest_with, pad_multiple, max_length)
            if end > start and (end - start + 1) * padded > max_batch_tokens:
                break
            longest = longest_with
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


class OnnxEmbedder(Embedder):
    """all-MiniLM-L6-v2 on ONNX Runtime (CPU); one session per process, calls serialized.

    Args:
        model_dir: the packaged sentence-transformers model (``embedding.minilm.model_dir()``).
        cache_dir: where exported ONNX files are kept.
        variant: ``fp32`` (plain export), ``opt`` (fused fp32), ``int8`` (fused + dynamic int8).
        batch_size: texts per session run, at most; max_batch_tokens: padded tokens per run, at
            most (:func:`length_batches`); max_tokens: truncation (256 for this model).
        sort_by_length: batch texts of similar length together (less padding).
        threads: ONNX Runtime intra-op threads (0: one per core).
        pad_multiple: pad each batch's length to a multiple of this (:meth:`_run`); 1: no more
            than the longest text.
    """

    model = "all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(
        self,
        model_dir: Path,
        cache_dir: Path,
        *,
        variant: Variant = "int8",
        batch_size: int = 64,
        max_batch_tokens: int = 8192,
        max_tokens: int = 256,
        sort_by_length: bool = True,
        threads: int = 0,
        pad_multiple: int = 1,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.cache_dir = Path(cache_dir)
        self.variant = variant
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.pad_multiple = pad_multiple
        self.max_tokens = max_tokens
        self.sort_by_length = sort_by_length
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def tokenizer(self) -> Any:
        """The model's own ``tokenizer.json`` (the one chunks are counted with), truncating at
        ``max_tokens`` word pieces, without padding (batches are padded by :meth:`_run`)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=self.max_tokens)  # the file says 128: the model takes 256
        tok.no_padding()
        return tok

    def _load(self) -> tuple[Any, Any]:
        if self._session is None:
            import onnxruntime as ort

            path = ensure_onnx_model(self.model_dir, self.cache_dir, self.variant)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._tokenizer = self.tokenizer()
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return self._session, self._tokenizer

    def _run(self, session: Any, encodings: list[Any]) -> np.ndarray:
        """Unit vectors ``(len(encodings), 384)`` of tokenized texts, padded to the longest
        (rounded up to a multiple of ``pad_multiple``: fewer distinct input shapes, for
        runtimes that keep state per shape)."""
        longest = padded_length(max(len(e.ids) for e in encodings), self.pad_multiple, self.max_tokens)
        ids = np.zeros((len(encodings), longest), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._forward(session, inputs)
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def _forward(self, session: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """``last_hidden_state`` ``(batch, seq, 384)`` float32 for int64 ``(batch, seq)`` inputs."""
        hidden: np.ndarray = session.run(None, inputs)[0]
        return hidden

    def _embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32 unit vectors."""
        with self._lock:
            session, tok = self._load()
            encodings = tok.encode_batch(texts)
            out = np.empty((len(texts), self.dimensions), dtype=np.float32)
            for idx in length_batches(
                [len(e.ids) for e in encodings],
                max_batch=self.batch_size,
                max_batch_tokens=self.max_batch_tokens,
                sort_by_length=self.sort_by_length,
                pad_multiple=self.pad_multiple,
                max_length=self.max_tokens,
            ):
                out[idx] = self._run(session, [encodings[j] for j in idx])
            del encodings
            trim_heap()
        return out
