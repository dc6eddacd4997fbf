"""Text generation from a trained model: N independent samples generated
together, one symbol at a time (one GEMM per layer and symbol for all N)."""
from __future__ import annotations

import contextlib
import sys

import numpy as np
from threadpoolctl import threadpool_limits

from .backends.cpu_threads import MIN_PART_FLOPS, CpuThreads
from .checks import MAX_SEED, python_value, real_in, whole
from .data import words
from .data.vocab import Vocab, format_chars
from .errors import CorpusError, UsageError
from .layout import layer_names

# The options of sampling, as `sample` and `generate` take them.
OPTIONS = ("length", "temperature", "top_k", "top_p", "prime", "seed", "num_samples")
MAX_LENGTH = 10**7  # symbols of one sample, and the largest top_k
MAX_SAMPLES = 4096  # samples generated together
BLOCK_STEPS = 64  # steps drawn between hand-overs (every stream's uniform numbers for them drawn at once)
MIN_GROUP_STREAMS = 32  # the fewest streams given a thread of their own (fewer measured no faster: docs/performance.md)
# Below this temperature a logit gap of a float32's range divided by it can overflow a float64.
TINY_TEMPERATURE = 1e-250


def check_options(length, temperature, top_k, prime, seed, num_samples, top_p) -> None:
    """The sampling options the CLI's flags check, for callers in Python: a
    UsageError naming the first bad one."""
    checks = [(whole(length, 1, MAX_LENGTH), f"length= must be a whole number in [1, {MAX_LENGTH}]"),
              (real_in(temperature, 0, 100), "temperature= must be a number in [0, 100]"),
              (top_k is None or whole(top_k, 1, MAX_LENGTH), f"top_k= must be None or a whole number in [1, "
                                                            f"{MAX_LENGTH}]"),
              (top_p is None or real_in(top_p, 0, 1, low_inclusive=False), "top_p= must be None or in (0, 1]"),
              (isinstance(prime, str), "prime= must be a string"),
              (whole(seed, 0, MAX_SEED), f"seed= must be a whole number in [0, {MAX_SEED}]"),
              (whole(num_samples, 1, MAX_SAMPLES), f"num_samples= must be a whole number in [1, {MAX_SAMPLES}]")]
    for ok, what in checks:
        if not ok:
            raise UsageError(what)


def next_distribution(logits: np.ndarray, temperature: float, top_k: int | None = None,
                      top_p: float | None = None) -> np.ndarray:
    """Probabilities (N, V) after temperature, top-k and top-p (nucleus).

    top-k keeps exactly k symbols, ties broken by the lower index; top-p keeps
    the smallest set of most likely symbols whose probability reaches p. The
    logits are shifted by their maximum before they are divided by the
    temperature, so a small temperature sends the others to exp(-inf) = 0
    instead of overflowing."""
    logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    shifted = logits - logits.max(axis=1, keepdims=True)
    if temperature < TINY_TEMPERATURE:  # the division may overflow to -inf, which is meant
        with np.errstate(over="ignore"):
            shifted /= temperature
    else:
        shifted /= temperature
    p = np.exp(shifted)  # underflow to 0 is NumPy's default "ignore"
    p /= p.sum(axis=1, keepdims=True)
    cut_k, cut_p = top_k is not None and top_k < p.shape[1], top_p is not None and top_p < 1
    if not (cut_k or cut_p):
        return p
    order = np.argsort(-logits, axis=1, kind="stable")  # most likely first; ties: lower index first
    keep = np.ones_like(p, dtype=bool)
    if cut_k:
        keep[np.arange(len(p))[:, None], order[:, top_k:]] = False
    if cut_p:
        sorted_p = np.take_along_axis(p, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p  # mass of the more likely symbols
        outside = before >= top_p
        rows = np.arange(len(p))[:, None]
        keep[rows, order] &= ~outside
    p = np.where(keep, p, 0.0)
    return p / p.sum(axis=1, keepdims=True)


def greedy(logits: np.ndarray) -> np.ndarray:
    """The most likely symbol of each row (ties: the lower index; a NaN never wins)."""
    return np.argmax(np.nan_to_num(logits, nan=-np.inf), axis=1)


def choose(logits: np.ndarray, temperature: float, top_k: int | None, u: np.ndarray,
           top_p: float | None = None) -> np.ndarray:
    """One symbol per row of logits (N, V), row i's drawn with the uniform
    number u[i] (u: (N,) in [0, 1)). A temperature below the smallest normal
    float is the greedy choice, as 0 is; so is a row whose logits are not all
    finite (an overflowing model)."""
    logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    if temperature < np.finfo(np.float64).tiny:
        return greedy(logits)
    finite = np.isfinite(logits).all(axis=1)
    if finite.all():
        return draw(next_distribution(logits, temperature, top_k, top_p), u)
    picks = greedy(logits)
    if finite.any():
        picks[finite] = draw(next_distribution(logits[finite], temperature, top_k, top_p), u[finite])
    return picks


def draw(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One index per row of probabilities (N, V), by inversion of the uniform number u[i] of each row."""
    return np.minimum((np.cumsum(p, axis=1) < u[:, None]).sum(axis=1), p.shape[1] - 1)


def forward_options(model) -> tuple[bool, float]:
    """(residual, zoneout's rate) of a model: the forward pass's settings
    (rnn_gpu.model.forward_settings); a model without them has neither."""
    return bool(getattr(model, "residual", False)), float(getattr(model, "zoneout_rate", 0.0))


def step(model, symbols, h):
    """One time step of every layer for N streams: symbols (N,), h (L, N, H)
    in place: the plain reference that `Stepper` is tested against. Returns
    the output layer's input (N, H): the top layer's states, or with
    residual connections y_L (y_1 = h_1, y_k = h_k + y_(k-1)). With zoneout,
    the expectation: h = p h + (1 - p) tanh(...)."""
    xp, p = model.backend.xp, model.params
    residual, zoneout = forward_options(model)
    symbols = xp.asarray(symbols)
    y = None
    for k in range(1, model.layers + 1):
        U, W, b = (p[n] for n in layer_names(k))
        x = U.T[symbols] if k == 1 else (y if residual else h[k - 2]) @ U.T
        new = xp.tanh(x + h[k - 1] @ W.T + b)
        h[k - 1] = new if not zoneout else zoneout * h[k - 1] + (1 - zoneout) * new
        y = h[k - 1] if y is None or not residual else h[k - 1] + y
    return y


class Stepper:
    """`step` for N streams in buffers kept from step to step (a step is a
    few small GEMMs: allocating their results costs as much as they do)."""

    def __init__(self, model, num_samples: int):
        xp, H, p = model.backend.xp, model.hidden_size, model.params
        self.xp = xp
        self.residual, self.zoneout = forward_options(model)
        self.h = xp.zeros((model.layers, num_samples, H), dtype=model.dtype)
        self.x, self.r, self.y = xp.empty((3, num_samples, H), dtype=model.dtype)
        self.y[...] = 0  # y_L of the zero state (residual connections' output layer input)
        self.o = xp.empty((num_samples, model.vocab_size), dtype=model.dtype)
        self.inputs = model.layout.stored(p, "U")  # (V, H): layer 1's input is a row of it
        # Row-major copies of the transposed weights: a BLAS multiplies a few rows by a row-major operand
        # several times faster than by a transposed view (bench/sampling.py).
        contiguous = xp.ascontiguousarray
        self.weights = [(contiguous(p[U].T), contiguous(p[W].T), p[b])
                        for U, W, b in map(layer_names, range(1, model.layers + 1))]
        self.V, self.c = contiguous(p["V"].T), p["c"]

    def __call__(self, symbols) -> None:
        xp, h, x, r, y = self.xp, self.h, self.x, self.r, self.y
        for k, (UT, WT, b) in enumerate(self.weights):
            if k == 0:
                xp.take(self.inputs, xp.asarray(symbols), axis=0, out=x)
            else:
                xp.matmul(y if self.residual else h[k - 1], UT, out=x)
            xp.matmul(h[k], WT, out=r)
            x += r
            x += b
            if self.zoneout:  # the expectation, as `step`: p h + (1 - p) tanh(...)
                xp.tanh(x, out=x)
                h[k] *= self.zoneout
                x *= 1 - self.zoneout
                h[k] += x
            else:
                xp.tanh(x, out=h[k])
            if self.residual:  # y_1 = h_1, y_k = h_k + y_(k-1)
                if k == 0:
                    y[...] = h[k]
                else:
                    y += h[k]

    def logits(self):
        """o = V y + c, y the output layer's input (the top layer's states, or
        with residual connections y_L), (N, V), in a buffer the next call overwrites."""
        self.xp.matmul(self.y if self.residual else self.h[-1], self.V, out=self.o)
        self.o += self.c
        return self.o


@contextlib.contextmanager
def sampling_threads(model, num_samples: int):
    """BLAS on one thread while a step's GEMMs are too small to share (the
    CPU backend's MIN_PART_FLOPS): handing them to threads costs more than it
    saves, and on a busy machine many times more."""
    work = 2 * num_samples * model.hidden_size * max(model.hidden_size, model.vocab_size)
    if model.backend.xp is not np or work >= 2 * MIN_PART_FLOPS:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def prime_codes(vocab: Vocab, prime: str) -> np.ndarray:
    """The code points (chars) or bytes (bytes) of `prime`. Text from the
    command line arrives with each byte that is not UTF-8 as a lone surrogate
    (U+DC80..U+DCFF, Python's surrogateescape): a bytes model reads the byte
    itself, a character model has no symbol for it."""
    if vocab.kind == "bytes":
        try:
            return np.frombuffer(prime.encode("utf-8", "surrogateescape"), dtype=np.uint8)
        except UnicodeEncodeError as exc:
            raise CorpusError(f"prime= has {describe_code(prime, exc.start)}, which no byte sequence encodes") from None
    codes = np.array([ord(c) for c in prime], dtype=np.int64)
    surrogate = np.flatnonzero((codes >= 0xD800) & (codes <= 0xDFFF))
    if surrogate.size:
        raise CorpusError(f"prime= has {describe_code(prime, int(surrogate[0]))}, which is not text; a bytes model "
                          "(vocab=bytes) reads any bytes")
    return codes


def describe_code(text: str, at: int) -> str:
    """'byte 0xFF at position 3' for a surrogate escape, else 'U+00E9 ('é') at position 3'."""
    code = ord(text[at])
    if 0xDC80 <= code <= 0xDCFF:
        return f"byte 0x{code - 0xDC00:02X} (not UTF-8) at position {at}"
    if 0xD800 <= code <= 0xDFFF:
        return f"U+{code:04X} (a lone surrogate) at position {at}"
    return f"U+{code:04X} ({text[at]!r}) at position {at}"


def encode_prime(vocab: Vocab, prime: str) -> np.ndarray:
    """The ids of `prime`. A character outside a character vocabulary is bad
    input, named with its position and code point (or byte); a word outside
    a word vocabulary becomes the unknown token, which is said once on stderr."""
    if not prime:
        return np.zeros(0, dtype=np.int64)
    if vocab.kind == "bpe":  # any text (its bytes): lossless, no unknown token
        return vocab.encode(prime)
    if vocab.kind == "words":
        ids = vocab.encode(prime)
        if (ids == words.UNKNOWN).any():
            tokens = words.tokenize(prime)
            unknown = sorted({t for t, i in zip(tokens, ids, strict=True) if i == words.UNKNOWN})
            print(f"note: the prime's {format_chars(unknown)} not in the vocabulary: the model reads the unknown "
                  f"token ({words.UNKNOWN_MARKER}) instead", file=sys.stderr, flush=True)
        return ids
    codes = prime_codes(vocab, prime)
    outside = vocab.outside(codes)
    if outside.size:
        at = int(outside[0])
        what = f"byte 0x{int(codes[at]):02X} at position {at}" if vocab.kind == "bytes" else describe_code(prime, at)
        others = sorted({prime[i] for i in outside[1:]} - {prime[at]}) if vocab.kind == "chars" else []
        also = f"; nor are {format_chars(others)}" if others else ""
        raise CorpusError(f"prime= has {what}, which is not in the model's vocabulary{also}")
    return vocab.encode_codes(codes.astype(np.uint32) if vocab.kind == "chars" else codes)


def is_model(model) -> bool:
    """What sampling reads of an rnn_gpu.TextRNN is there (model.py's `sample` calls this module, so
    it is not imported here)."""
    names = ("params", "backend", "layers", "hidden_size", "vocab_size", "dtype")
    return all(hasattr(model, n) for n in names) and isinstance(model.params, dict) and "V" in model.params


def check_model_and_vocab(model, vocab) -> Vocab:
    """The vocabulary to sample `model` with: `vocab`, else the one
    `rnn_gpu.load` attached; a UsageError if either is of the wrong kind or
    they do not belong together."""
    if not is_model(model):
        raise UsageError(f"model= must be an rnn_gpu.TextRNN (rnn_gpu.load gives one), got {type(model).__name__}")
    own = getattr(model, "vocab", None)
    vocab = own if vocab is None else vocab
    if vocab is None:
        raise UsageError("sample needs the vocabulary: pass vocab=, or a model from rnn_gpu.load")
    if not isinstance(vocab, Vocab) or not vocab.valid:
        raise UsageError(f"vocab= must be an rnn_gpu vocabulary (rnn_gpu.load gives one), got {type(vocab).__name__}")
    if len(vocab) != model.vocab_size:
        raise UsageError(f"vocab= has {len(vocab)} symbols ({vocab.kind}) but the model predicts {model.vocab_size}: "
                         "it is another model's vocabulary")
    if own is not None and vocab != own:
        differs = "kind" if vocab.kind != own.kind else "symbols"
        raise UsageError(f"vocab= differs from the model's own vocabulary in its {differs} ({vocab.kind} against "
                         f"{own.kind}): it is another model's vocabulary")
    return vocab


class Streams:
    """A group of streams sampled together on one thread: its Stepper, and
    the symbols it drew last, which its next step reads."""

    def __init__(self, model, n: int, choice: dict):
        self.stepper, self.to_host, self.choice, self.n = Stepper(model, n), model.backend.to_host, choice, n
        self.last = None

    def prime(self, prime_ids) -> None:
        for symbol in prime_ids:
            self.stepper(np.full(self.n, symbol))

    def draw(self, u: np.ndarray, out: np.ndarray) -> None:
        """out[:, j] = the symbols of step j, drawn with the uniform numbers
        u[j] (u: (k, n), out: (n, k)); the first is drawn from the state the
        prime left (h = 0 without one)."""
        for j, row in enumerate(u):
            if self.last is not None:
                self.stepper(self.last)
            out[:, j] = self.last = choose(self.to_host(self.stepper.logits()), u=row, **self.choice)


def stream_threads(model, num_samples: int):
    """The threads that sample (the CPU backend's, rnn_gpu.backends.cpu_threads;
    one of their own on another backend) and how many of them: one group of
    streams per thread, each group at least MIN_GROUP_STREAMS."""
    cpu = getattr(model.backend, "cpu", None) or CpuThreads(1)
    return cpu, cpu.available() if num_samples >= 2 * MIN_GROUP_STREAMS else 1


def symbol_blocks(model, prime_ids, length: int, *, temperature: float, top_k, top_p, seed: int, num_samples: int):
    """Yields the symbols drawn after the prime's, (N, k) arrays of k <=
    BLOCK_STEPS consecutive steps. Stream i's symbol at step t is drawn with
    uniform number t * N + i of the seed's generator, so the streams are
    free to run in groups on threads of their own between blocks, and give
    the same text however they are grouped."""
    cpu, threads = stream_threads(model, num_samples)
    choice = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    rng = np.random.default_rng(seed)
    with cpu.region(threads) if threads > 1 else sampling_threads(model, num_samples):  # groups: BLAS on one thread
        groups = {(s.start, s.stop): Streams(model, s.stop - s.start, choice)
                  for s in cpu.parts(num_samples, MIN_GROUP_STREAMS)}

        def each(work) -> None:  # work(group, its streams) for every group, in parallel
            cpu.run(lambda s: work(groups[s.start, s.stop], s), num_samples, MIN_GROUP_STREAMS)

        each(lambda group, _: group.prime(prime_ids))
        for start in range(0, length, BLOCK_STEPS):
            u = rng.random((min(BLOCK_STEPS, length - start), num_samples))
            out = np.empty((num_samples, len(u)), dtype=np.int64)
            each(lambda group, s, u=u, out=out: group.draw(u[:, s], out[s]))
            yield out


def generate(model, vocab: Vocab, length: int, *, temperature: float = 1.0, top_k: int | None = None,
             prime: str = "", seed: int = 0, num_samples: int = 1, top_p: float | None = None):
    """Yields (sample index, text) pieces as they come: first the prime for
    every sample, then each generated symbol, decoded."""
    prime_ids = encode_prime(vocab, prime)
    decoders = [vocab.text_decoder() for _ in range(num_samples)]
    for i in range(num_samples):
        yield i, decoders[i](prime_ids)
    for block in symbol_blocks(model, prime_ids, length, temperature=temperature, top_k=top_k, top_p=top_p,
                               seed=seed, num_samples=num_samples):
        for symbols in block.T:
            for i in range(num_samples):
                yield i, decoders[i]([symbols[i]])
    for i in range(num_samples):
        yield i, decoders[i]([], final=True)


def sample(model, vocab: Vocab | None = None, length: int = 500, temperature: float = 1.0, top_k: int | None = None,
           prime: str = "", seed: int = 0, num_samples: int = 1, top_p: float | None = None):
    """`prime` followed by `length` generated symbols, decoded: one string,
    or a list of `num_samples` strings when more than one is asked for.
    `vocab` defaults to the one `rnn_gpu.load` attached to the model. The
    samples are drawn together, one step for all of them, and each is
    decoded once at the end (the text `generate` yields, joined)."""
    vocab = check_model_and_vocab(model, vocab)
    check_options(length, temperature, top_k, prime, seed, num_samples, top_p)
    length, temperature, top_k, seed, num_samples, top_p = map(python_value, (length, temperature, top_k, seed,
                                                                              num_samples, top_p))
    texts = sample_texts(model, vocab, encode_prime(vocab, prime), length, temperature=temperature, top_k=top_k,
                         seed=seed, num_samples=num_samples, top_p=top_p)
    return texts[0] if num_samples == 1 else texts


def sample_texts(model, vocab: Vocab, prime_ids, length: int, *, temperature: float, top_k, seed: int,
                 num_samples: int, top_p) -> list[str]:
    """The texts of `sample`, options checked and the prime encoded."""
    blocks = list(symbol_blocks(model, prime_ids, length, temperature=temperature, top_k=top_k, top_p=top_p,
                                seed=seed, num_samples=num_samples))
    drawn = np.concatenate(blocks, axis=1) if blocks else np.zeros((num_samples, 0), dtype=np.int64)
    return [vocab.decode(np.concatenate([prime_ids, row])) for row in drawn]
