"""The local model's backends: ``auto`` (the default) runs documents and queries on OpenVINO,
in bfloat16 where the CPU has AMX-BF16 and in fp32 elsewhere; ONNX is exported on first use
into DATA_DIR/models, from the packaged weights, once even when several processes start
together; a damaged export is made again; every backend's vectors are PyTorch's. The exports
cost ~10 s: this module does them once (one data dir shared by its tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from docingest.providers.chunking.chunker import load_tokenizer
from docingest.providers.embedding import make_embedder, tokenizer_path
from docingest.providers.embedding import onnx_runtime as ort_backend
from docingest.providers.embedding.local import (
    BACKENDS,
    LocalEmbedder,
    cpu_has_amx_bf16,
    make_local_embedder,
    model_dir,
    resolve_backend,
)
from docingest.providers.embedding.onnx_runtime import (
    OnnxEmbedder,
    ensure_onnx_model,
    is_valid,
    length_batches,
    padded_length,
)
from docingest.providers.embedding.openvino_runtime import IR_FILES, OpenVinoEmbedder, ensure_fp16_ir
from docingest.settings import Settings

TEXTS = [
    "Multiversion concurrency control lets readers proceed without blocking writers.",
    "The jsonb type stores data in a decomposed binary format.",
    "short",
    " ".join(f"word{i}" for i in range(400)),  # longer than 256 word pieces: truncated alike
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """PyTorch's vectors (sentence-transformers), ``(4, 384)``."""
    return LocalEmbedder(batch_size=2).embed(TEXTS)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One empty data dir for the module: the first test exports into it, the others reuse it."""
    return tmp_path_factory.mktemp("data")


def _settings(data_dir: Path, **overrides: str) -> Settings:
    values = {"embedding_backend": "onnx", **overrides}
    return Settings(data_dir=data_dir, environment="test", **values)


def test_auto_is_the_default_and_picks_by_cpu() -> None:
    assert Settings(environment="test").embedding_backend == "auto"
    for purpose in ("documents", "queries"):
        assert resolve_backend("auto", purpose, amx_bf16=True) == "openvino-bf16"
        assert resolve_backend("auto", purpose, amx_bf16=False) == "openvino"
    for named in BACKENDS:  # a backend named is used for all
        assert resolve_backend(named, "documents") == resolve_backend(named, "queries") == named


def test_amx_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n\n")
    assert cpu_has_amx_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\n")
    assert not cpu_has_amx_bf16(cpuinfo)
    assert not cpu_has_amx_bf16(tmp_path / "absent")


def test_bf16_vectors_are_the_fp32_ones(reference: np.ndarray) -> None:
    vectors = make_local_embedder("torch-bf16", batch_size=2).embed(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = (vectors * reference).sum(axis=1)
    assert cos.min() > 0.999, cos


def test_auto_runs_documents_and_queries_on_the_backends_it_picks(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docingest.runtime import Runtime

    for amx, precision in ((True, "bf16"), (False, "f32")):
        monkeypatch.setattr("docingest.providers.embedding.local.cpu_has_amx_bf16", lambda amx=amx: amx)
        rt = Runtime(_settings(data_dir, embedding_backend="auto"), migrate=False)
        documents = rt.embedder()
        assert isinstance(documents, OpenVinoEmbedder) and documents.precision == precision
        assert rt.query_embedder() is documents  # one compiled model serves both


def test_first_use_exports_into_an_empty_data_dir_and_matches_pytorch(
    data_dir: Path, reference: np.ndarray
) -> None:
    assert not (data_dir / "models").exists()
    embedder = make_embedder(_settings(data_dir))
    assert isinstance(embedder, OnnxEmbedder) and embedder.variant == "opt"
    vectors = embedder.embed(TEXTS)
    exported = list((data_dir / "models").glob("all-MiniLM-L6-v2-*/model-opt.onnx"))
    assert len(exported) == 1 and is_valid(exported[0])
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = (vectors * reference).sum(axis=1)
    assert cos.min() > 0.9999, cos
    assert embedder.embed([]).shape == (0, 384)


def test_later_uses_load_the_exported_file(
    data_dir: Path, reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(ort_backend, "export_onnx", no_export)
    monkeypatch.setattr(ort_backend, "optimize_onnx", no_export)
    vectors = make_embedder(_settings(data_dir)).embed(TEXTS)
    assert (vectors * reference).sum(axis=1).min() > 0.9999


def test_a_damaged_export_is_detected_and_made_again(data_dir: Path, reference: np.ndarray) -> None:
    path = next((data_dir / "models").glob("all-MiniLM-L6-v2-*/model-opt.onnx"))
    size = path.stat().st_size
    with path.open("r+b") as f:  # a partial file, as a full disk or a copy cut short leaves
        f.truncate(size // 2)
    (path.parent / f"model-opt.tmp{os.getpid() + 1}.onnx").write_bytes(b"left by a dead export")
    assert not is_valid(path)
    vectors = make_embedder(_settings(data_dir)).embed(TEXTS)
    assert is_valid(path) and path.stat().st_size == size
    assert not list(path.parent.glob("*.tmp*"))
    assert (vectors * reference).sum(axis=1).min() > 0.9999
    with path.open("r+b") as f:  # same length, one byte changed
        f.seek(size // 3)
        byte = f.read(1)
        f.seek(size // 3)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert not is_valid(path)
    ensure_onnx_model(model_dir(), data_dir / "models", "opt")
    assert is_valid(path)


def test_int8_backend_is_close_to_pytorch(data_dir: Path, reference: np.ndarray) -> None:
    embedder = make_embedder(_settings(data_dir, embedding_backend="onnx-int8"))
    assert isinstance(embedder, OnnxEmbedder) and embedder.variant == "int8"
    vectors = embedder.embed(TEXTS)
    assert (vectors * reference).sum(axis=1).min() > 0.95


def _model_files(data_dir: Path) -> set[str]:
    target = next((data_dir / "models").glob("all-MiniLM-L6-v2-*"))
    return {p.name for p in target.glob("*.onnx")}


def test_each_backend_writes_only_its_own_model_file(data_dir: Path) -> None:
    make_embedder(_settings(data_dir)).embed(["x"])
    make_embedder(_settings(data_dir, embedding_backend="onnx-int8")).embed(["x"])
    assert _model_files(data_dir) == {"model-opt.onnx", "model-int8.onnx"}  # the export was scratch


@pytest.mark.parametrize(
    ("backend", "precision", "floor"), [("openvino", "f32", 0.99999), ("openvino-bf16", "bf16", 0.9999)]
)
def test_openvino_backends_match_pytorch(
    data_dir: Path, reference: np.ndarray, backend: str, precision: str, floor: float
) -> None:
    embedder = make_embedder(_settings(data_dir, embedding_backend=backend))
    assert isinstance(embedder, OpenVinoEmbedder) and embedder.precision == precision
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = (vectors * reference).sum(axis=1)
    assert cos.min() > floor, cos
    # the order of the texts in a call changes nothing (batches are sorted by length inside)
    again = embedder.embed(TEXTS[::-1])[::-1]
    assert (again * vectors).sum(axis=1).min() > 0.99999


def test_openvino_keeps_the_export_and_a_float16_ir_with_digests(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = next((data_dir / "models").glob("all-MiniLM-L6-v2-*"))
    plain, (xml, weights) = target / "model.onnx", (target / name for name in IR_FILES)
    assert is_valid(plain) and is_valid(xml) and is_valid(weights)  # made by the test above
    assert weights.stat().st_size < plain.stat().st_size * 0.6  # float16 weights: half of fp32's

    def no_export(*args: object) -> None:
        raise AssertionError("made again")

    monkeypatch.setattr(ort_backend, "export_onnx", no_export)
    assert ensure_fp16_ir(model_dir(), data_dir / "models") == xml  # valid: loaded as it is
    with weights.open("r+b") as f:  # damaged weights: the pair is made again from the export
        f.truncate(weights.stat().st_size // 2)
    assert ensure_fp16_ir(model_dir(), data_dir / "models") == xml
    assert is_valid(xml) and is_valid(weights) and not list(target.glob("*.tmp*"))
    # the variants of ONNX Runtime are made from the kept export, which stays
    make_embedder(_settings(data_dir, embedding_backend="onnx")).embed(["x"])
    assert is_valid(plain)


def test_batches_respect_the_token_budget_and_cover_every_text_once() -> None:
    lengths = [256, 12, 200, 31, 256, 33, 64, 5, 150, 256, 90, 17] * 7
    batches = length_batches(lengths, max_batch=32, max_batch_tokens=1024, pad_multiple=32)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))  # each index once
    assert [lengths[i] for i in seen] == sorted(lengths, reverse=True)  # longest first
    for batch in batches:
        longest = padded_length(max(lengths[i] for i in batch), 32, 256)
        assert longest % 32 == 0 and len(batch) <= 32
        assert len(batch) * longest <= 1024 or len(batch) == 1
    assert len(length_batches(lengths, max_batch=5, max_batch_tokens=10**9)[0]) == 5
    unsorted = length_batches(lengths, max_batch=4, max_batch_tokens=10**9, sort_by_length=False)
    assert np.concatenate(unsorted).tolist() == list(range(len(lengths)))
    assert length_batches([], max_batch=4, max_batch_tokens=100) == []
    assert length_batches([300], max_batch=4, max_batch_tokens=100)[0].tolist() == [0]  # alone, over budget
    assert padded_length(250, 32, 256) == 256 and padded_length(3, 32, 256) == 32
    assert padded_length(7, 1, 256) == 7 and padded_length(300, 32, 256) == 300  # never shorter


def test_prepare_embedder_command(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from docingest.cli.main import app

    monkeypatch.setenv("UPLOAD_PIPELINE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("UPLOAD_PIPELINE_ENVIRONMENT", "test")
    monkeypatch.setenv("UPLOAD_PIPELINE_EMBEDDING_BACKEND", "onnx")
    result = CliRunner().invoke(app, ["prepare-embedder"])  # the configured backend: onnx
    assert result.exit_code == 0, result.output
    assert f"onnx ready under {data_dir / 'models'}" in result.output
    result = CliRunner().invoke(app, ["prepare-embedder", "--backend", "tensorrt"])
    assert result.exit_code == 2
    # Every backend the option's help names, auto included.
    assert (
        "unknown embedding backend 'tensorrt': use one of auto, openvino, openvino-bf16, onnx, "
        "onnx-int8, torch, torch-bf16" in " ".join(result.output.split())
    )


CHILD = """
import logging, os, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
from docingest.providers.embedding.local import model_dir
from docingest.providers.embedding.onnx_runtime import ensure_onnx_model
path = ensure_onnx_model(model_dir(), Path(sys.argv[1]), "fp32")
print(os.stat(path).st_ino)
"""


def test_concurrent_first_uses_export_once(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(cache)],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    inodes = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(inodes) == 1, "both processes must load the same file"
    assert sum(err.count("exporting all-MiniLM-L6-v2") for _, err in outs) == 1
    path = next(cache.glob("all-MiniLM-L6-v2-*/model.onnx"))
    assert is_valid(path) and not list(path.parent.glob("*.tmp*"))


def test_chunks_are_counted_with_the_tokenizer_the_onnx_backend_uses(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    counter = load_tokenizer(tokenizer_path())
    embedder = make_local_embedder(settings.embedding_backend, cache_dir=tmp_path)
    assert isinstance(embedder, OnnxEmbedder)
    assert Path(tokenizer_path()) == embedder.model_dir / "tokenizer.json"
    tok = embedder.tokenizer()
    words = " ".join(f"w{i}" for i in range(600))
    full = counter.encode(words).ids
    fits = counter.decode(full[1 : settings.embedding_max_tokens - 1])  # 256 with [CLS] and [SEP]
    assert len(counter.encode(fits).ids) == settings.embedding_max_tokens == embedder.max_tokens
    assert tok.encode(fits).ids == counter.encode(fits).ids  # a chunk that fits is embedded whole
    assert len(tok.encode(words).ids) == settings.embedding_max_tokens  # a longer text is cut at 256


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown embedding backend"):
        make_local_embedder("tensorrt")


def test_openvino_is_imported_with_its_usage_telemetry_off() -> None:
    """``import openvino`` alone would start ``openvino_telemetry`` (usage events sent to Google
    Analytics from a child process); through :func:`import_openvino` its converter gets the
    no-op stub and the telemetry package is never loaded. In a fresh interpreter, as a worker."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from docingest.providers.embedding.openvino_runtime import import_openvino\n"
        "ov = import_openvino()\n"
        "import openvino.tools.ovc as ovc\n"
        "print(type(ovc.telemetry).__module__, sys.modules.get('openvino_telemetry'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["openvino.tools.ovc.telemetry_stub", "None"], done.stdout + done.stderr
