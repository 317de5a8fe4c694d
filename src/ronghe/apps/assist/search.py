"""Nearest neighbours by cosine similarity, with faiss (``faiss-cpu``).

Measured once on this project's machine (AMD EPYC, 2 cores shared; clustered synthetic 384-dim
unit vectors, one query at a time, 1 thread, k=5; ``benchmarks/assist.py --part vectors``
repeats it on BANKING77 question embeddings): faiss's exact ``IndexFlatIP`` answered
in 0.06 ms at 1,000 vectors, 1.1 ms at 10,000 and 15 ms at 100,000 with no build time and
recall 1; numpy's matrix product + argpartition took 0.08 / 8 / 38 ms; the graph indexes
(faiss HNSW, hnswlib, usearch) answered in 0.3-2 ms at 10,000-100,000 but took 4-350 s to build
and missed neighbours (recall@5 0.84-0.93 at 10,000 on clustered synthetic vectors). FAQ sets
and intent training sets are thousands to tens of thousands of questions, so exact search is the
default; ``hnsw`` (faiss ``IndexHNSWFlat``) is there for very large sets.
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
