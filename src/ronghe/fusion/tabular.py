"""Numeric and categorical columns beside the text (``--feature-cols``), as model inputs.

Numeric columns: missing values filled with the training mean, standardised. Categorical columns
(anything not numeric): for linear models one-hot over the categories seen in training (unseen ->
all zeros); for LightGBM integer codes that it treats as native categoricals (unseen -> missing).
State is plain JSON.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError


class Tabular:
    def __init__(self, state: dict | None = None):
        self.state = state or {}

    def fit(self, df: pd.DataFrame | None) -> "Tabular":
        cols = []
        for name in ([] if df is None else df.columns):
            col = df[name]
            numeric = pd.to_numeric(col, errors="coerce")
            if numeric.notna().sum() == col.notna().sum() and col.notna().any():
                cols.append({"name": str(name), "kind": "numeric",
                             "mean": float(numeric.mean()), "std": float(numeric.std(ddof=0) or 1.0)})
            else:
                cats = sorted({str(v) for v in col.dropna()})
                cols.append({"name": str(name), "kind": "categorical", "categories": cats})
        self.state = {"columns": cols}
        return self

    @property
    def columns(self) -> list[dict]:
        return self.state.get("columns", [])

    def _frame(self, df: pd.DataFrame | None, n: int) -> pd.DataFrame:
        if not self.columns:
            return pd.DataFrame(index=range(n))
        if df is None:
            raise DataError("this model uses feature columns "
                            f"{[c['name'] for c in self.columns]}; pass them with the texts "
                            "(a DataFrame, or --feature-cols)")
        missing = [c["name"] for c in self.columns if c["name"] not in df.columns]
        if missing:
            raise DataError(f"feature columns missing from the input: {missing}")
        return df.reset_index(drop=True)

    def linear(self, df: pd.DataFrame | None, n: int) -> np.ndarray:
        df = self._frame(df, n)
        parts = []
        for c in self.columns:
            col = df[c["name"]]
            if c["kind"] == "numeric":
                x = pd.to_numeric(col, errors="coerce").fillna(c["mean"]).to_numpy(float)
                parts.append(((x - c["mean"]) / c["std"])[:, None])
            else:
                index = {v: i for i, v in enumerate(c["categories"])}
                onehot = np.zeros((len(col), len(index)))
                for r, v in enumerate(col):
                    if pd.notna(v) and str(v) in index:
                        onehot[r, index[str(v)]] = 1.0
                parts.append(onehot)
        return np.hstack(parts) if parts else np.zeros((n, 0))

    def lightgbm(self, df: pd.DataFrame | None, n: int) -> tuple[np.ndarray, list[int]]:
        df = self._frame(df, n)
        parts, cat_idx = [], []
        for i, c in enumerate(self.columns):
            col = df[c["name"]]
            if c["kind"] == "numeric":
                parts.append(pd.to_numeric(col, errors="coerce").to_numpy(float)[:, None])
            else:
                index = {v: k for k, v in enumerate(c["categories"])}
                parts.append(np.array([index.get(str(v), np.nan) if pd.notna(v) else np.nan
                                       for v in col], dtype=float)[:, None])
                cat_idx.append(i)
        return (np.hstack(parts) if parts else np.zeros((n, 0))), cat_idx
