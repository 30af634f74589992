"""Byte-level BPE for source code: training, encoding, and the Hugging Face tokenizer.json.

Pre-tokenization splits identifiers, digit runs, punctuation runs and whitespace runs apart
(a space never sticks to the word after it). That way a name or path is tokenized the same
way wherever it stands (`(self`, ` self` and an answer `self` share the tokens of `self`),
which a tiny decoder needs in order to copy answers out of its context.

The same pattern is written into tokenizer.json as a Split pre-tokenizer followed by a
ByteLevel step without its own regex, so the TypeScript side (@huggingface/tokenizers)
produces the same ids; tools/tests checks that on real files.
"""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Sequence, Tuple

WS = r" \t\n\r\f\v"  # ASCII whitespace only: Python and JavaScript disagree on Unicode \s
PATTERN = r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[^" + WS + r"A-Za-z0-9_]+|[" + WS + r"]+"
SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>"]
PAD, BOS, EOS = 0, 1, 2
_split = re.compile(PATTERN)


def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte -> printable character table (the ByteLevel alphabet)."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


BYTE_TO_CHAR = _bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def pretokenize(text: str) -> List[str]:
    """Pieces in the ByteLevel alphabet."""
    return ["".join(BYTE_TO_CHAR[b] for b in p.encode("utf-8")) for p in _split.findall(text)]


def train(texts: Iterable[str], vocab_size: int, min_freq: int = 2) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Returns (vocab in id order, merges in rank order). Incremental pair counts."""
    words = Counter()
    for t in texts:
        words.update(pretokenize(t))
    seqs = [list(w) for w in words]
    freqs = [words[w] for w in words]
    pair_counts: Counter = Counter()
    where: Dict[Tuple[str, str], set] = defaultdict(set)
    for i, s in enumerate(seqs):
        for a, b in zip(s, s[1:]):
            pair_counts[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    vocab = SPECIALS + [BYTE_TO_CHAR[b] for b in range(256)]
    merges: List[Tuple[str, str]] = []
    while len(vocab) < vocab_size and pair_counts:
        best, count = max(pair_counts.items(), key=lambda kv: (kv[1], kv[0]))
        if count < min_freq:
            break
        merges.append(best)
        new = best[0] + best[1]
        vocab.append(new)
        for i in list(where.pop(best, ())):
            s, f = seqs[i], freqs[i]
            for a, b in zip(s, s[1:]):  # remove this word's old pairs
                pair_counts[(a, b)] -= f
                if pair_counts[(a, b)] <= 0:
                    del pair_counts[(a, b)]
                where.get((a, b), set()).discard(i)
            out, j = [], 0
            while j < len(s):
                if j + 1 < len(s) and s[j] == best[0] and s[j + 1] == best[1]:
                    out.append(new)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            seqs[i] = out
            for a, b in zip(out, out[1:]):
                pair_counts[(a, b)] += f
                where[(a, b)].add(i)
        pair_counts.pop(best, None)
    return vocab, merges


class Tokenizer:
    def __init__(self, vocab: Sequence[str], merges: Sequence[Tuple[str, str]]):
        self.vocab = list(vocab)
        self.ids = {t: i for i, t in enumerate(self.vocab)}
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.merges = [tuple(m) for m in merges]
        self._cache: Dict[str, List[int]] = {}

    @classmethod
    def load(cls, path: str) -> "Tokenizer":
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        vocab = [None] * (max(j["model"]["vocab"].values()) + 1)
        for t, i in j["model"]["vocab"].items():
            vocab[i] = t
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in j["model"]["merges"]]
        return cls(vocab, merges)

    def _bpe(self, piece: str) -> List[int]:
        hit = self._cache.get(piece)
        if hit is not None:
            return hit
        parts = list(piece)
        while len(parts) > 1:
            best, best_rank = -1, None
            for j in range(len(parts) - 1):  # lowest rank wins, leftmost on ties
                r = self.ranks.get((parts[j], parts[j + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = j, r
            if best < 0:
                break
            parts[best:best + 2] = [parts[best] + parts[best + 1]]
        ids = [self.ids[p] for p in parts]
        if len(self._cache) < 200_000:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> List[int]:
        out: List[int] = []
        for p in pretokenize(text):
            out.extend(self._bpe(p))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        data = bytearray()
        for i in ids:
            if i < len(SPECIALS):
                continue
            data.extend(CHAR_TO_BYTE[c] for c in self.vocab[i])
        return data.decode("utf-8", errors="replace")

    def to_json(self) -> dict:
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True}
                for i, t in enumerate(SPECIALS)
            ],
            "normalizer": None,
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": PATTERN}, "behavior": "Isolated", "invert": False},
                    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
                ],
            },
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                "vocab": {t: i for i, t in enumerate(self.vocab)},
                "merges": [[a, b] for a, b in self.merges],
            },
        }

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, ensure_ascii=False)
