"""How much a word vocabulary's unknown token flatters its loss per
character, on a corpus. Not a test: a measurement.

    python -m bench.unknown_share CORPUS [--sizes 2000,4000,8000,16000]

For each vocabulary size: the share of tokens and of characters that fall
under the unknown token, and an estimate of the nats per character the
unknown token hides: a model that reads the unknown token still has to say
which word it was. Spelling it out from a unigram distribution over the
unknown words (their frequencies in the corpus) costs their entropy H(w |
unknown) per unknown token; spread over the corpus's characters that is
unknown tokens * H / characters. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

from rnn_gpu import words
from rnn_gpu.bench import machine


def unknown_cost(counts: Counter, size: int, n_chars: int) -> dict:
    known = set(words.choose_symbols(counts, size)[1:])
    unknown = {t: c for t, c in counts.items() if t not in known}
    n_unknown = sum(unknown.values())
    entropy = -sum(c / n_unknown * math.log(c / n_unknown) for c in unknown.values()) if n_unknown else 0.0
    return {"vocab_size": size, "unknown_token_share": n_unknown / sum(counts.values()),
            "unknown_char_share": sum(len(t) * c for t, c in unknown.items()) / n_chars,
            "unknown_types": len(unknown), "entropy_given_unknown_nats": entropy,
            "hidden_nats_per_char": n_unknown * entropy / n_chars}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--sizes", default="2000,4000,8000,16000")
    args = parser.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    counts = Counter(words.tokenize(text))
    rows = [unknown_cost(counts, int(s), len(text)) for s in args.sizes.split(",")]
    print(json.dumps({"machine": machine(), "corpus": args.corpus.name, "characters": len(text),
                      "tokens": sum(counts.values()), "distinct_tokens": len(counts), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
