"""Nearest neighbours by cosine similarity, with faiss (``faiss-cpu``): the assistant's FAQ and
out-of-scope kNN, the recommender's text candidates and similar items.

Measured on this project's machine (AMD EPYC, 2 shared cores; one query at a time, 1 thread,
k=5). On BANKING77's 10,003 training questions (MiniLM embeddings, ``benchmarks/assist.py
--part vectors``): faiss's exact ``IndexFlatIP`` 1.6 ms per query with no build, numpy's matrix
product + argpartition 8.0 ms, and the graph indexes 0.14-0.20 ms (faiss HNSW, hnswlib,
usearch) after 1.3-2.5 s of building, with recall@5 0.999-1.0 on these real questions; on
clustered synthetic vectors they missed neighbours (recall@5 0.84-0.93 at 10,000, 0.37-0.60 at
100,000, where exact search took 15 ms and the graphs 50-350 s to build). A reply costs about
100 ms (the encoder and the classifiers), so exact search - always right, nothing to build when
a bundle loads - is the default; ``hnsw`` (faiss ``IndexHNSWFlat``) is there for very large sets.
"""

from __future__ import annotations

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


class VectorIndex:
    """Unit vectors searched by inner product (= cosine). ``kind``: flat | hnsw | auto."""

    def __init__(self, vectors: np.ndarray, kind: str = "auto", hnsw_above: int = 200_000):
        import faiss

        self.vectors = normalise(vectors)
        n, d = self.vectors.shape
        self.kind = ("hnsw" if n > hnsw_above else "flat") if kind == "auto" else kind
        if self.kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = 128
        else:
            self.index = faiss.IndexFlatIP(d)
        self.index.add(self.vectors)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, positions), each (n_queries, k), best first; positions -1 pad when
        fewer than k vectors exist."""
        k = max(1, min(k, len(self)))
        sims, idx = self.index.search(normalise(queries), k)
        return sims, idx
