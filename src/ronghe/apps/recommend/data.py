"""Reading interactions, items and users, and the time-aware split.

* interactions: ``user``, ``item`` and ``time`` columns (names detected, or ``--user-col`` ...);
  time as numbers (e.g. unix seconds) or dates (ISO 8601); every row must have all three, else
  the file is refused naming the rows - nothing is dropped silently;
* items: an ``item`` id column, the text columns (joined into one text per item: titles,
  descriptions, tags ...; by default every non-numeric column) and numeric feature columns;
* users (optional): a ``user`` column and numeric (or categorical, coded) features.

``leave_last_out`` holds out each user's last interactions (by time, ties by file order), so
nothing later than a held-out interaction is ever used to predict it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ... import data as core_data
from ...errors import DataError

USER_COLS = ("user", "user_id", "userid", "customer", "customer_id")
ITEM_COLS = ("item", "item_id", "itemid", "product", "product_id", "movie_id")
TIME_COLS = ("time", "timestamp", "ts", "date", "datetime", "event_time")


def _rows(mask: np.ndarray) -> str:
    rows = (np.flatnonzero(mask) + 2).tolist()  # file line numbers (header = line 1)
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    return ", ".join(map(str, rows[:10])) + more


def _ids(col: pd.Series) -> pd.Series:
    return col.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v))
                   else str(v).strip())


def _times(col: pd.Series, source: str) -> np.ndarray:
    num = pd.to_numeric(col, errors="coerce")
    if num.notna().all():
        return num.to_numpy(np.float64)
    dates = pd.to_datetime(col, errors="coerce", utc=True, format="ISO8601")
    # a column of numbers with a few bad cells: name the bad cells, not the numbers
    bad = (num.isna() if num.notna().sum() > dates.notna().sum() else dates.isna()).to_numpy()
    if bad.any():
        raise DataError(f"{source}: the time column holds values that are neither numbers nor "
                        f"ISO 8601 dates in rows {_rows(bad)} (e.g. {str(col[bad].iloc[0])[:40]!r}); "
                        "fix or remove those rows")
    return (dates.astype("int64") / 1e9).to_numpy(np.float64)


def read_interactions(path, *, user_col=None, item_col=None, time_col=None) -> pd.DataFrame:
    """A frame of ``user`` (str), ``item`` (str), ``time`` (float seconds), in file order."""
    df = core_data.read_table(path)
    source = str(path)
    u = core_data.detect_column(df, user_col, USER_COLS, "user", source)
    i = core_data.detect_column(df, item_col, ITEM_COLS, "item", source)
    t = core_data.detect_column(df, time_col, TIME_COLS, "time", source)
    out = pd.DataFrame({"user": _ids(df[u]), "item": _ids(df[i])})
    blank = ((out["user"] == "") | (out["item"] == "")).to_numpy()
    if blank.any():
        raise DataError(f"{source}: rows {_rows(blank)} have an empty user or item; fill or "
                        "remove them")
    out["time"] = _times(df[t], source)
    if out.empty:
        raise DataError(f"{source} holds no interactions")
    return out


@dataclass
class Items:
    ids: list[str]
    texts: list[str]
    features: pd.DataFrame  # numeric, one row per id (same order)
    notes: list[str] = field(default_factory=list)


def _numeric_columns(df: pd.DataFrame, skip: set) -> tuple[pd.DataFrame, list[str]]:
    num, other = {}, []
    for c in df.columns:
        if c in skip:
            continue
        values = pd.to_numeric(df[c].replace("", np.nan), errors="coerce")
        present = df[c].replace("", np.nan).notna()
        if present.any() and values[present].notna().all():
            num[str(c)] = values.astype(np.float64)
        else:
            other.append(c)
    return pd.DataFrame(num, index=df.index), other


def items_from_frame(df: pd.DataFrame, source: str, *, item_col=None, text_cols=None) -> Items:
    i = core_data.detect_column(df, item_col, ITEM_COLS, "item", source)
    ids = _ids(df[i])
    if (ids == "").any():
        raise DataError(f"{source}: rows {_rows((ids == '').to_numpy())} have an empty item id")
    dup = ids.duplicated().to_numpy()
    if dup.any():
        raise DataError(f"{source}: item ids repeat in rows {_rows(dup)} (e.g. "
                        f"{ids[dup].iloc[0]!r}); give each item once")
    if text_cols:
        missing = [c for c in text_cols if c not in df.columns]
        if missing:
            raise DataError(f"{source}: text column(s) {missing} not found; its columns are "
                            f"{', '.join(map(str, df.columns))}")
        features, _ = _numeric_columns(df.drop(columns=list(text_cols)), {i})
        texts_from = list(text_cols)
    else:
        features, texts_from = _numeric_columns(df, {i})
    if not texts_from:
        raise DataError(f"{source} has no text column (titles, descriptions, tags ...): every "
                        "column besides the id is numeric; name the text with --text-col")
    texts = [" | ".join(str(v).strip() for v in row if str(v).strip() not in ("", "nan", "None"))
             for row in df[texts_from].astype(str).itertuples(index=False)]
    empty = np.array([not t for t in texts])
    notes = []
    if empty.any():
        notes.append(f"{int(empty.sum())} item(s) have no text (rows {_rows(empty)}): they "
                     "are placed by behaviour only")
    return Items(ids.tolist(), texts, features.reset_index(drop=True), notes)


def read_items(path, *, item_col=None, text_cols=None) -> Items:
    return items_from_frame(core_data.read_table(path), str(path), item_col=item_col,
                            text_cols=text_cols)


def read_users(path, *, user_col=None) -> pd.DataFrame:
    """Numeric user features indexed by user id (categorical columns become category codes)."""
    df = core_data.read_table(path)
    u = core_data.detect_column(df, user_col, USER_COLS, "user", str(path))
    ids = _ids(df[u])
    num, other = _numeric_columns(df, {u})
    for c in other:
        num[str(c)] = pd.Categorical(df[c].astype(str)).codes.astype(np.float64)
    num.index = ids
    return num[~num.index.duplicated(keep="last")]


def leave_last_out(inter: pd.DataFrame, n: int = 1, min_left: int = 1
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): each user's last ``n`` interactions by time go to test, for users who
    keep at least ``min_left`` interactions in train; the others stay whole in train."""
    order = inter.assign(_pos=np.arange(len(inter))).sort_values(["user", "time", "_pos"],
                                                                   kind="stable")
    rank_from_end = order.groupby("user").cumcount(ascending=False)
    size = order.groupby("user")["item"].transform("size")
    test_mask = (rank_from_end < n) & (size - n >= min_left)
    test = order[test_mask].drop(columns="_pos")
    train = order[~test_mask].sort_values("_pos").drop(columns="_pos")
    return train.reset_index(drop=True), test.reset_index(drop=True)
