"""The teacher's text prior: real sentence embeddings from the packaged model, cached by sentence."""

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="the train extra is not installed")

from rtfuse.fusion.text import TEXT_DIM, TextEncoder  # noqa: E402


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return TextEncoder(cache=tmp_path_factory.mktemp("text") / "emb.npz")


def test_embeddings_are_unit_vectors_that_carry_meaning(encoder):
    e = encoder(
        [
            "the thermal image has strong vertical stripes",
            "the infrared frame shows heavy column stripe noise",
            "the visible image is dark",
            "clean",
        ]
    )
    assert e.shape == (4, TEXT_DIM) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] and sim[0, 1] > sim[0, 3] + 0.2  # paraphrases are closer
    assert encoder([]).shape == (0, TEXT_DIM)


def test_cache_round_trip_needs_no_model(encoder):
    sentences = ["the IR frame has mild blur", "the colour image shows severe overexposure"]
    first = encoder(sentences)
    encoder.save()
    again = TextEncoder(cache=encoder.path)
    assert len(again) >= 2
    assert np.array_equal(again(sentences), first) and again._model is None  # served from the file
    again(["a sentence never seen"])  # a new one loads the model and marks the cache for saving
    assert again._model is not None and again._dirty


def test_damaged_cache_is_rebuilt_not_fatal(tmp_path):
    path = tmp_path / "emb.npz"
    path.write_bytes(b"not an npz")
    enc = TextEncoder(cache=path)
    assert len(enc) == 0
    enc(["clean"])
    enc.save()
    assert len(TextEncoder(cache=path)) == 1
