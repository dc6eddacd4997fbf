"""The byte-level BPE of `--vocab bpe`, built on Hugging Face `tokenizers`.

The tokenizer is GPT-2's kind: text is split by the ByteLevel
pre-tokenizer's regular expression (no prefix space), each piece's UTF-8
bytes are written as the 256 printable characters of `BYTE_CHARS`, and BPE
merges are applied within a piece. Its vocabulary holds all 256 bytes, so no
text has an unknown token and decoding the ids of any text gives it back
exactly; any id sequence decodes (a UTF-8 character split by the sequence's
ends, or bytes that are not UTF-8, are replaced as a `bytes` model's are).

Text read in pieces encodes as the whole does when the pieces are cut where
the pre-tokenizer always cuts: before a space or a newline that follows a
character that is not whitespace (no piece of the pre-tokenizer's holds a
non-whitespace character followed by whitespace, and its expression looks
neither behind nor, there, ahead). `whole_pieces` holds back the text after a
piece's last such place and puts it in front of the next piece, as
words.tokens_of_pieces holds back its last token; `batches` cuts a piece
into short ones that the library encodes in parallel.

The trained tokenizer is kept as the library writes it (`Tokenizer.to_str()`
JSON) with the prepared corpus and in the checkpoint, and checked when read
back (`check`). The library is imported only when a BPE vocabulary is made or
read (`library`).
"""
from __future__ import annotations

import importlib
import itertools
import json
import re

import numpy as np

from ..errors import CorpusError, UsageError

TOKENIZER = "rnn_gpu.bpe/1"  # recorded with every BPE vocabulary; a different one refuses to load it
DEFAULT_VOCAB_SIZE = 8000  # as words' (rnn_gpu/data/words.py)
MIN_VOCAB_SIZE = 257  # the 256 bytes and at least one merge
BATCH_CHARS = 1 << 14  # the length of the pieces encoded in parallel
GROUP = 64  # pieces encoded together: about 1 MiB of text
# The most corpus bytes the trainer counts: a larger corpus trains on every k-th of its pieces (8 MiB
# chunks, or whole files where smaller), k the least that fits, so the trainer's counts stay bounded
# however large the corpus (docs/data.md, "Preparing a large corpus with BPE"). Encoding reads all of it.
TRAIN_BYTES = 256 << 20
INSTALL = "pip install 'rnn_gpu[bpe]'"


def library(doing: str = "vocab=bpe"):
    """The `tokenizers` module; missing, a UsageError that says how to install it."""
    try:
        return importlib.import_module("tokenizers")
    except ImportError:
        raise UsageError(f"{doing} needs the tokenizers package: {INSTALL}") from None


def library_version() -> str:
    return str(getattr(library(), "__version__", "unknown"))


def _byte_chars() -> tuple[str, ...]:
    """GPT-2's printable stand-ins for the 256 bytes (the ByteLevel alphabet):
    a printable Latin-1 byte is its own character, the others 256, 257, ..."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    extra = iter(range(256, 512))
    return tuple(chr(b) if b in printable else chr(next(extra)) for b in range(256))


BYTE_CHARS = _byte_chars()  # byte -> its character in a token
CHAR_BYTES = {c: b for b, c in enumerate(BYTE_CHARS)}  # and back


def token_bytes(token: str) -> bytes:
    """The bytes a token (a string of BYTE_CHARS) stands for; KeyError for another character."""
    return bytes(CHAR_BYTES[c] for c in token)


# -- where text may be cut ----------------------------------------------------
_LAST_CUT = re.compile(r".*\S(?=[ \n])", re.S)  # ends at the last place to cut
_NEXT_CUT = re.compile(r"\S(?=[ \n])")


def last_cut(text: str) -> int:
    """The last position of `text` where the pre-tokenizer always cuts (0: none)."""
    m = _LAST_CUT.match(text)
    return m.end() if m else 0


def whole_pieces(pieces):
    """The text of `pieces` (strings) again, cut only where the pre-tokenizer
    cuts anyway: the text after a piece's last such place is held back and
    goes in front of the next piece. A piece without one is held whole (text
    with no space or newline after a character is read to its next one)."""
    held: list[str] = []  # text not yet given out, the start of the next piece
    for piece in pieces:
        if not piece:
            continue
        at = last_cut(piece)
        if at:
            yield "".join(held) + piece[:at]
            held = [piece[at:]]
        elif held and piece[0] in " \n" and not held[-1][-1].isspace():  # the place is where the two meet
            yield "".join(held)
            held = [piece]
        else:
            held.append(piece)
    if held:
        yield "".join(held)


def batches(text: str, size: int | None = None) -> list[str]:
    """`text` in pieces of about `size` (BATCH_CHARS) characters, cut where the pre-tokenizer cuts anyway."""
    size = size or BATCH_CHARS
    out, start, n = [], 0, len(text)
    while n - start > size:
        at = last_cut(text[start:start + size])
        if at:
            end = start + at
        else:
            m = _NEXT_CUT.search(text, start + size)
            if m is None:
                break
            end = m.end()
        out.append(text[start:end])
        start = end
    out.append(text[start:])
    return out


# -- training and reading back ---------------------------------------------------
def train(texts, size: int) -> str:
    """The JSON of a byte-level BPE tokenizer of `size` tokens (fewer where
    the text has no more pairs to merge) trained on `texts` (an iterator of
    strings or lists of strings, read once, as it comes)."""
    tk = library()
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(vocab_size=size, initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
                                     special_tokens=[], show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer.to_str()


def symbols_of(text: str) -> tuple[str, ...]:
    """The tokens of a tokenizer's JSON in id order, every part we rely on
    checked: a ValueError says what is wrong."""
    try:
        spec = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
        raise ValueError("no model")
    model, pre, decoder = spec["model"], spec.get("pre_tokenizer"), spec.get("decoder")
    if model.get("type") != "BPE":
        raise ValueError(f"its model is {model.get('type')!r}, not BPE")
    if not isinstance(pre, dict) or pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") is not False:
        raise ValueError("its pre-tokenizer is not ByteLevel without a prefix space")
    if not isinstance(decoder, dict) or decoder.get("type") != "ByteLevel":
        raise ValueError("its decoder is not ByteLevel")
    if spec.get("normalizer") is not None or spec.get("added_tokens"):
        raise ValueError("it has a normalizer or added tokens")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not all(isinstance(i, int) and not isinstance(i, bool) for i in vocab.values()):
        raise ValueError("its vocabulary is not a mapping of tokens to ids")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError("its ids are not 0 to N-1, each once")
    symbols = tuple(sorted(vocab, key=vocab.get))
    if not all(symbols) or not all(c in CHAR_BYTES for t in symbols for c in t):
        raise ValueError("a token holds a character that stands for no byte")
    if not set(BYTE_CHARS) <= set(symbols):
        raise ValueError("its vocabulary lacks some of the 256 bytes")
    return symbols


def load(text: str, written_by: str | None = None):
    """The library's Tokenizer of a JSON text; a ValueError if this version of the library cannot read it."""
    tk = library()
    try:
        return tk.Tokenizer.from_str(text)
    except Exception as exc:  # the library raises a plain Exception for every failure
        by = f" (written with tokenizers {written_by})" if written_by else ""
        raise ValueError(f"cannot be read by tokenizers {library_version()}{by}: {exc}") from None


def check(text, written_by: str | None = None):
    """(symbols, Tokenizer) of a tokenizer's JSON read back from a file: it
    parses, is ours, and this library loads it with as many tokens; else a
    ValueError (a missing library: a UsageError)."""
    if not isinstance(text, str):
        raise ValueError(f"not JSON text but {type(text).__name__}")
    symbols = symbols_of(text)
    tokenizer = load(text, written_by)
    if tokenizer.get_vocab_size(with_added_tokens=True) != len(symbols):
        raise ValueError(f"the library reads {tokenizer.get_vocab_size()} tokens, its vocabulary lists "
                         f"{len(symbols)}")
    return symbols, tokenizer


# -- encoding -------------------------------------------------------------------
def encode_pieces(tokenizer, texts, dtype) -> np.ndarray:
    """The ids of strings (valid Unicode), one after another, encoded in
    parallel GROUP at a time (the library's encodings of a group, far larger
    than their ids, are all that is held at once)."""
    encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch  # fast: tokenizers >= 0.20
    parts = [np.zeros(0, dtype=dtype)]
    for start in range(0, len(texts), GROUP):
        encodings = encode(texts[start:start + GROUP], add_special_tokens=False)
        parts.append(np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=dtype))
    return np.concatenate(parts) if len(parts) > 2 else parts[-1]


def encode_text(tokenizer, text: str, dtype) -> np.ndarray:
    """The ids of text without lone surrogates, of any length."""
    return encode_pieces(tokenizer, batches(text), dtype)


_ESCAPES = re.compile("[\udc80-\udcff]+")


def encode_any(tokenizer, text: str, dtype, name: str = "text") -> np.ndarray:
    """The ids of any str: a lone surrogate U+DC80..U+DCFF stands for a raw
    byte (Python's surrogateescape, as text from the command line has the
    bytes that are not UTF-8) and encodes as that byte, each run of them BPE
    merged as one piece; another lone surrogate is a CorpusError naming its
    position and code point."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return encode_text(tokenizer, text, dtype)
    for at, ch in enumerate(text):
        if 0xD800 <= ord(ch) <= 0xDFFF and not 0xDC80 <= ord(ch) <= 0xDCFF:
            raise CorpusError(f"{name} has U+{ord(ch):04X} (a lone surrogate) at position {at}, which no byte "
                              "sequence encodes")
    # escaped bytes that form UTF-8 together are text again
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    parts, start = [], 0
    for m in _ESCAPES.finditer(text):
        parts.append(encode_text(tokenizer, text[start:m.start()], dtype))
        raw = m.group().encode("utf-8", "surrogateescape")
        tokens = tokenizer.model.tokenize("".join(BYTE_CHARS[b] for b in raw))
        parts.append(np.array([t.id for t in tokens], dtype=dtype))
        start = m.end()
    parts.append(encode_text(tokenizer, text[start:], dtype))
    return np.concatenate(parts)
