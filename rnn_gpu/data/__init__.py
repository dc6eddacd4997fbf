"""Corpora, from the files on disk to the windows a step reads:
`vocab` (symbols, text to ids), `words` (the word tokenizer), `bpe` (the
byte-level BPE, on Hugging Face `tokenizers`), `sources`
(finding and reading files), `encoding` (the passes that choose a vocabulary
and encode), `prepared` (the on-disk format), `corpus` (the corpus a run
trains on, and its cache), `streams` (batch streams and evaluation windows).
"""
from ..errors import CorpusError
from .corpus import Corpus, load_corpus
from .streams import BatchStream, check_ids, evaluation_positions, evaluation_streams, evaluation_windows
from .vocab import VOCAB_KINDS, SymbolChars, Vocab

__all__ = ["VOCAB_KINDS", "BatchStream", "Corpus", "CorpusError", "SymbolChars", "Vocab", "check_ids",
           "evaluation_positions", "evaluation_streams", "evaluation_windows", "load_corpus"]
