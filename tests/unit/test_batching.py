"""Count- and token-bounded batching, retry hints of OpenAI replies, bucket sizing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from docingest.errors import EmbeddingDimensionMismatch, EmbeddingInputTooLong, EmbeddingRejected
from docingest.providers.embedding.batching import BatchingEmbedder, BatchLimits, iter_batches
from docingest.providers.embedding.openai import parse_duration, retry_after_seconds
from docingest.providers.ratelimit import bucket_size


def plan_batches(token_counts: list[int], limits: BatchLimits) -> list[tuple[int, int]]:
    """Every batch :func:`iter_batches` plans, as ``[start, end)`` ranges."""
    return [(start, end) for start, end, _ in iter_batches(token_counts, limits)]


def test_batches_bounded_by_count_and_tokens() -> None:
    limits = BatchLimits(max_inputs=3, max_tokens=10, max_input_tokens=8)
    assert plan_batches([1, 1, 1, 1, 1], limits) == [(0, 3), (3, 5)]
    assert plan_batches([4, 4, 4, 1], limits) == [(0, 2), (2, 4)]
    assert plan_batches([8, 8], limits) == [(0, 1), (1, 2)]
    assert plan_batches([], limits) == []


def test_a_full_batch_is_planned_before_the_next_count_arrives() -> None:
    consumed: list[int] = []

    def counts():  # type: ignore[no-untyped-def]
        for i in range(10):
            consumed.append(i)
            yield 1

    batches = iter_batches(counts(), BatchLimits(max_inputs=4, max_tokens=100, max_input_tokens=8))
    assert next(batches) == (0, 4, 4) and len(consumed) == 4  # not 5: the first request goes early
    assert list(batches) == [(4, 8, 4), (8, 10, 2)]


def test_inputs_checked_before_sending() -> None:
    limits = BatchLimits(max_inputs=3, max_tokens=100, max_input_tokens=8)
    with pytest.raises(EmbeddingInputTooLong):
        plan_batches([1, 9], limits)
    with pytest.raises(EmbeddingRejected):
        plan_batches([1, 0], limits)


class _Echo(BatchingEmbedder):
    model = "echo"
    dimensions = 2

    def __init__(self, wrong_at: int | None = None) -> None:
        super().__init__(limits=BatchLimits(2, 100, 100), concurrency=3)
        self.wrong_at = wrong_at

    def count_tokens(self, texts):  # type: ignore[no-untyped-def]
        return [len(t) for t in texts]

    def _embed_batch(self, texts, tokens, prepared=None):  # type: ignore[no-untyped-def]
        if self.wrong_at is not None and str(self.wrong_at) in texts:
            return np.ones((len(texts), 3), dtype=np.float32)
        return np.array([[float(t), 1.0] for t in texts], dtype=np.float32)


def test_embed_keeps_order_and_yields_good_batches_before_an_error() -> None:
    texts = [str(i) for i in range(9)]
    assert _Echo().embed(texts)[:, 0].tolist() == list(range(9))
    got: list[tuple[int, int]] = []
    with pytest.raises(EmbeddingDimensionMismatch):
        for start, end, _ in _Echo(wrong_at=8).embed_batches(texts):
            got.append((start, end))
    assert (8, 9) not in got and len(got) >= 1


def test_a_lazy_iterable_is_drawn_as_planned_and_indexed_in_drawn_order() -> None:
    drawn: list[int] = []

    def texts():  # type: ignore[no-untyped-def]
        for i in range(300):
            drawn.append(i)
            yield str(i)

    got = {}
    for start, end, vectors in _Echo().embed_batches(texts()):
        got.update({i: v for i, v in zip(range(start, end), vectors[:, 0].tolist(), strict=True)})
    assert got == {i: float(i) for i in range(300)} and drawn == list(range(300))


def test_an_error_raised_by_the_iterable_is_raised_after_the_batches_before_it() -> None:
    def texts():  # type: ignore[no-untyped-def]
        yield from (str(i) for i in range(70))
        raise RuntimeError("the database went away")

    got: list[tuple[int, int]] = []
    with pytest.raises(RuntimeError, match="went away"):
        for start, end, _ in _Echo().embed_batches(texts()):
            got.append((start, end))
    assert sorted(got) == [(i, i + 2) for i in range(0, 64, 2)]  # the first block of 64 was sent


def test_retry_hints() -> None:
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("2") == 2.0
    assert retry_after_seconds({"retry-after": "1"}) == 1.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert (
        retry_after_seconds(
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1.5s",
                "x-ratelimit-remaining-tokens": "500",
                "x-ratelimit-reset-tokens": "9s",
            }
        )
        == 1.5
    )
    assert retry_after_seconds({}) is None


def test_bucket_never_admits_more_than_the_limit_in_a_minute() -> None:
    capacity, refill = bucket_size(60, 0.1)
    assert capacity + refill * 60 == pytest.approx(60)
    capacity, refill = bucket_size(1, 0.1)
    assert capacity == 1 and refill == pytest.approx(1 / 60)


def test_conventional_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from docingest.settings import Settings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("LLAMA_CLOUD_API_KEY", "llx-test")
    s = Settings(environment="test", embedding_provider="openai", parser="llamaparse")
    assert s.openai_api_key == "sk-test" and s.llamaparse_api_key == "llx-test"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        Settings(environment="test", embedding_provider="openai")


class _Slow(BatchingEmbedder):
    """Records every batch sent; each call takes ``delay`` seconds; ``fail_first`` raises once."""

    model = "slow"
    dimensions = 2

    def __init__(self, *, delay: float = 0.02, fail_first: bool = False, concurrency: int = 2) -> None:
        super().__init__(limits=BatchLimits(1, 100, 5), concurrency=concurrency)
        self.delay, self.fail_first = delay, fail_first
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def count_tokens(self, texts):  # type: ignore[no-untyped-def]
        return [len(t) for t in texts]

    def _embed_batch(self, texts, tokens, prepared=None):  # type: ignore[no-untyped-def]
        with self._lock:
            self.sent.extend(texts)
            first = len(self.sent) == 1
        time.sleep(self.delay)
        if self.fail_first and first:
            raise EmbeddingRejected("refused")
        return np.ones((len(texts), 2), dtype=np.float32)


def test_no_batch_is_sent_after_an_error() -> None:
    emb = _Slow(fail_first=True, concurrency=2)
    with pytest.raises(EmbeddingRejected):
        list(emb.embed_batches([f"t{i}" for i in range(50)]))
    time.sleep(0.3)  # lanes that were still running have stopped
    # the failing batch, plus at most one per other lane taken before the failure was seen
    assert len(emb.sent) <= 1 + emb.concurrency, emb.sent


def test_an_input_refused_by_the_plan_is_never_sent_and_earlier_batches_are_yielded() -> None:
    emb = _Slow(delay=0.0, concurrency=2)
    texts = ["a", "b", "c", "toolong", "d"]
    got: list[int] = []
    with pytest.raises(EmbeddingInputTooLong):
        for start, _, _ in emb.embed_batches(texts):
            got.append(start)
    assert "toolong" not in emb.sent and "d" not in emb.sent
    assert sorted(got) == [0, 1, 2]


def test_abandoning_the_iteration_stops_sending() -> None:
    emb = _Slow(delay=0.02, concurrency=2)
    batches = emb.embed_batches([f"t{i}" for i in range(200)])
    next(batches)
    batches.close()
    time.sleep(0.3)
    sent = len(emb.sent)
    time.sleep(0.3)
    assert len(emb.sent) == sent < 20


def _openai_embedder(dimensions: int = 4, limiter: object | None = None, **limits: int):  # type: ignore[no-untyped-def]
    from docingest.providers.embedding.openai import OpenAIEmbedder
    from docingest.providers.ratelimit import LocalBackoff

    return OpenAIEmbedder(
        model="text-embedding-3-small",
        dimensions=dimensions,
        base_url="http://127.0.0.1:9/v1",
        api_key="k",
        limiter=limiter or LocalBackoff(),
        limits=BatchLimits(**limits) if limits else BatchLimits(),
    )


def _b64(vec: list[float]) -> str:
    import base64

    return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()


def test_a_reply_is_checked_in_the_lane_and_decoded_in_input_order_by_finish() -> None:
    emb = _openai_embedder()
    reply = {
        "data": [{"index": 1, "embedding": _b64([0, 3, 0, 4])}, {"index": 0, "embedding": _b64([2, 0, 0, 0])}]
    }
    checked = emb._checked_embeddings(reply, 2)
    assert isinstance(checked[0], str)  # not decoded yet: that is the consumer's work
    np.testing.assert_allclose(emb._finish(checked), [[1, 0, 0, 0], [0, 0.6, 0, 0.8]], rtol=1e-6)
    floats = emb._checked_embeddings({"data": [{"index": 0, "embedding": [0.0, 0.0, 5.0, 0.0]}]}, 1)
    np.testing.assert_allclose(emb._finish(floats), [[0, 0, 1, 0]])


def test_a_short_vector_is_a_dimension_mismatch_before_decoding() -> None:
    emb = _openai_embedder()
    with pytest.raises(EmbeddingDimensionMismatch, match="returned vectors of 3 dimensions"):
        emb._checked_embeddings({"data": [{"index": 0, "embedding": _b64([1, 2, 3])}]}, 1)
    with pytest.raises(EmbeddingDimensionMismatch, match="returned 1 vectors for 2 inputs"):
        emb._checked_embeddings({"data": [{"index": 0, "embedding": _b64([1, 2, 3, 4])}]}, 2)
    with pytest.raises(TypeError):  # malformed: retried as a transient reply
        emb._checked_embeddings({"data": [{"index": 0, "embedding": {"x": 1}}]}, 1)


def test_base64_of_the_right_length_that_does_not_decode_is_transient() -> None:
    from docingest.errors import EmbeddingUnavailable

    emb = _openai_embedder()
    bad = "!" * len(_b64([1, 2, 3, 4]))
    checked = emb._checked_embeddings({"data": [{"index": 0, "embedding": bad}]}, 1)
    with pytest.raises(EmbeddingUnavailable, match="undecodable") as info:
        emb._finish(checked)
    assert info.value.retryable


def test_short_texts_are_counted_by_their_bytes_and_long_ones_exactly() -> None:
    from docingest.providers.embedding.openai import cl100k_counter

    emb = _openai_embedder(max_inputs=64, max_tokens=300_000, max_input_tokens=8192)  # bound: 4,687 bytes
    short, long = "caf\u00e9 " * 10, "word " * 2000
    counts = emb.count_tokens([short, long, "  "])
    assert counts == [len(short.encode("utf-8")), cl100k_counter()(long), 0]
    assert counts[0] >= cl100k_counter()(short)  # an upper bound, never less

    class _Metered:
        meters_tokens = True

    metered = _openai_embedder(limiter=_Metered(), max_inputs=64, max_tokens=300_000, max_input_tokens=8192)
    assert metered.count_tokens([short]) == [cl100k_counter()(short)]  # tokens/minute needs the real count


def test_an_error_decoding_one_reply_still_yields_the_others_then_raises() -> None:
    class _Undecodable(_Echo):
        def _finish(self, reply):  # type: ignore[no-untyped-def]
            if 4.0 in reply[:, 0]:
                raise EmbeddingDimensionMismatch("undecodable")
            return reply

    texts = [str(i) for i in range(10)]
    got = []
    with pytest.raises(EmbeddingDimensionMismatch, match="undecodable"):
        for start, end, _ in _Undecodable().embed_batches(texts):
            got.append((start, end))
    assert (4, 6) not in got and got  # the batch holding "4" is never yielded; earlier ones are


def test_a_fault_wrapped_api_embedder_keeps_its_batched_path() -> None:
    """The fault injector wraps the whole interface: the embedding stage's ``embed_batches``
    reaches the API embedder's planned, concurrent batches (one text per batch here, two in
    flight), and an injected fault stops them like a provider's error."""
    from docingest.errors import EmbeddingUnavailable
    from docingest.testing.faults import FaultyEmbedder

    inner = _Slow(delay=0.05, concurrency=2)
    faulty = FaultyEmbedder(inner, error_rate=0.0, delay_seconds=0.001)
    in_flight, most = 0, 0
    lock = threading.Lock()
    send = inner._embed_batch

    def counting(texts, tokens, prepared=None):  # type: ignore[no-untyped-def]
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            return send(texts, tokens, prepared)
        finally:
            with lock:
                in_flight -= 1

    inner._embed_batch = counting  # type: ignore[method-assign]
    texts = [f"t{i}" for i in range(8)]
    spans = sorted((start, end) for start, end, _ in faulty.embed_batches(texts))
    assert spans == [(i, i + 1) for i in range(8)]  # the inner limits' batches (max_inputs=1)
    assert sorted(inner.sent) == sorted(texts) and most == 2
    assert faulty.embed(["a", "b"]).shape == (2, 2)

    failing = FaultyEmbedder(_Slow(delay=0.0), error_rate=1.0)
    with pytest.raises(EmbeddingUnavailable):
        list(failing.embed_batches(texts))
