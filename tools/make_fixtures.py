"""Make test/fixtures/tiny-arc: a small random arc-model/1 package and its golden outputs.

Deterministic: the same torch version gives the same bytes. Run from the repo root:
    /usr/bin/python3 tools/make_fixtures.py [--out test/fixtures/tiny-arc] [--check]
--check also runs every golden case through onnxruntime-node (tools/onnx_run.mjs) and fails
unless the ONNX files reproduce golden.json to max abs diff < 1e-4.

golden.json (schema in docs/DESIGN.md):
- encoder[i]: token_ids (no BOS), group_sizes, embeddings [m][outputSize] for one document
  (batch of 1, decoderIndex 0).
- cont: the projected <Cont> vector.
- decoder: input_ids; logits_full [s][vocab] from one forward over embed(input_ids) at
  positions 0..s-1; logits_last [vocab] for the last position computed through the KV cache
  (prefill of s-1 tokens, then one step with past length s-1).
- greedy[i]: prompt_ids (start with BOS), max_new_tokens, output_ids = the new tokens only,
  argmax at every step with no stopping rule (the fixture guarantees EOS is never produced
  and every argmax wins by a margin > 1e-3, so fp32 runtimes agree exactly; outputs are varied).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from typing import Dict, List, Sequence, Tuple

# The golden numbers must not depend on the machine: OpenBLAS splits a matmul differently with
# another thread count (last-bit differences), so the fixture is always made with one thread.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import (ArcEncoder, Decoder, DecoderConfig, EncoderConfig,  # noqa: E402
                   encode_documents, group_sizes)
import export  # noqa: E402

SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>"]
BOS, EOS = 1, 2
PRETOKENIZE = r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[^\sA-Za-z0-9_]+|\s+"
VOCAB_SIZE = 300

# A few lines of code-like text to learn ~40 merges from (written for this fixture).
CORPUS = """\
def load_config(path, strict=True):
    with open(path) as handle:
        return parse_config(handle.read(), strict)

class TokenCache:
    def __init__(self, capacity=1024):
        self.capacity = capacity
        self.entries = {}

    def get(self, key, default=None):
        return self.entries.get(key, default)

MAX_RETRIES = 3
DEFAULT_TIMEOUT = 30
export function parseHeader(line: string): Header | null {
  const match = /^### (.+)$/.exec(line);
  return match ? { path: match[1] } : null;
}
export const DEFAULT_PORT = 8080;
"""

ENC_CFG = EncoderConfig(vocab_size=VOCAB_SIZE, dim=48, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=12,
                        hidden_dim=96, norm_eps=1e-5, rope_theta=10000.0, rope_layout="meta",
                        pooling_factor=4, proj_hidden=32, out_dim=64, n_decoders=1)
DEC_CFG = DecoderConfig(vocab_size=VOCAB_SIZE, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16,
                        hidden_dim=128, norm_eps=1e-5, rope_theta=10000.0, rope_layout="meta",
                        tie_embeddings=False, context_length=128)
ENCODER_LENGTHS = [1, 3, 4, 17, 37]
MAX_CHUNK_TOKENS = 64


# --------------------------------------------------------------------------- tokenizer

def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2 byte-level alphabet: printable Latin-1 bytes map to themselves, the others to 256+."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _words(text: str) -> List[str]:
    enc = bytes_to_unicode()
    return ["".join(enc[b] for b in piece.encode("utf-8")) for piece in re.findall(PRETOKENIZE, text)]


def train_bpe(text: str, vocab_size: int) -> Tuple[List[str], List[Tuple[str, str]]]:
    alphabet = [bytes_to_unicode()[b] for b in range(256)]
    vocab = SPECIALS + alphabet
    words = Counter(tuple(w) for w in _words(text))
    merges: List[Tuple[str, str]] = []
    while len(vocab) < vocab_size:
        pairs: Counter = Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))  # most frequent, ties by text
        merges.append(best)
        vocab.append(best[0] + best[1])
        merged = Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return vocab, merges


def bpe_encode(text: str, vocab: Sequence[str], merges: Sequence[Tuple[str, str]]) -> List[int]:
    """Reference encoder (lowest-rank pair first), used to check the JS tokenizer agrees."""
    ids = {t: i for i, t in enumerate(vocab)}
    rank = {m: r for r, m in enumerate(merges)}
    out: List[int] = []
    for w in _words(text):
        parts = list(w)
        while len(parts) > 1:
            cand = [(rank.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            r, i = min(cand)
            if r == 1 << 30:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        out += [ids[p] for p in parts]
    return out


def tokenizer_json(vocab: Sequence[str], merges: Sequence[Tuple[str, str]]) -> dict:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, s in enumerate(SPECIALS)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": PRETOKENIZE}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(vocab)}, "merges": [[a, b] for a, b in merges]},
    }


# --------------------------------------------------------------------------- golden values

def f32(values) -> list:
    """Shortest decimals that read back as the same float32 (keeps the JSON small and exact)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().numpy()
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim > 1:
        return [f32(row) for row in arr]
    return [float(str(v)) for v in arr]


def random_models(seed: int = 0) -> Tuple[ArcEncoder, Decoder]:
    torch.manual_seed(seed)
    enc, dec = ArcEncoder(ENC_CFG), Decoder(DEC_CFG)
    with torch.no_grad():
        for mod in (enc, dec):
            for name, p in mod.named_parameters():
                if name.endswith("norm.weight"):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.normal_(0.0, 0.2 if "tok_embeddings" in name or "_tok" in name else 0.08)
    return enc.eval(), dec.eval()


def greedy(dec: Decoder, prompt: Sequence[int], n: int) -> Tuple[List[int], float]:
    """Greedy decoding through the KV cache; also returns the smallest top-1 margin seen."""
    ids = torch.tensor([list(prompt)])
    pos = torch.arange(len(prompt))[None]
    logits, past = dec(dec.embed(ids), torch.ones_like(ids), pos)
    out, margin = [], float("inf")
    for _ in range(n):
        last = logits[0, -1]
        top2 = torch.topk(last, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        nxt = int(torch.argmax(last))
        out.append(nxt)
        t = len(prompt) + len(out) - 1
        step = torch.tensor([[nxt]])
        logits, past = dec(dec.embed(step), torch.ones(1, t + 1, dtype=torch.long), torch.tensor([[t]]), past)
    return out, margin


def golden(enc: ArcEncoder, dec: Decoder, vocab: Sequence[str], merges) -> dict:
    g = torch.Generator().manual_seed(1234)
    cases = []
    for n in ENCODER_LENGTHS:
        ids = torch.randint(3, VOCAB_SIZE, (n,), generator=g).tolist()
        emb = encode_documents(enc, [ids], 0)[0]
        cases.append({"token_ids": ids, "group_sizes": group_sizes(n, ENC_CFG.pooling_factor), "embeddings": f32(emb)})
    text_ids = bpe_encode("def load_config(path):\n    return parse(path)\n", vocab, merges)
    ids = torch.tensor([[BOS] + text_ids])
    s = ids.shape[1]
    pos = torch.arange(s)[None]
    full, _ = dec(dec.embed(ids), torch.ones_like(ids), pos)
    _, past = dec(dec.embed(ids[:, :-1]), torch.ones(1, s - 1, dtype=torch.long), pos[:, :-1])
    last, _ = dec(dec.embed(ids[:, -1:]), torch.ones(1, s, dtype=torch.long), pos[:, -1:], past)
    greedy_cases = []
    for prompt_text, n in (("class TokenCache:", 8), ("MAX_RETRIES = ", 6)):
        prompt = [BOS] + bpe_encode(prompt_text, vocab, merges)
        out, margin = greedy(dec, prompt, n)
        if EOS in out or margin < 1e-3 or len(set(out)) < 3:
            # a repeated token would hide cache/position bugs; a near tie would make runtimes disagree
            raise SystemExit(f"greedy case {prompt_text!r} is weak (eos, repeats or margin {margin:.2e}): change the seed")
        greedy_cases.append({"prompt_ids": prompt, "max_new_tokens": n, "output_ids": out})
    return {"encoder": cases, "cont": f32(enc.cont(0)),
            "decoder": {"input_ids": ids[0].tolist(), "logits_last": f32(last[0, -1]), "logits_full": f32(full[0])},
            "greedy": greedy_cases}


# --------------------------------------------------------------------------- parity through onnxruntime-node

def check_package(out: str, gold: dict) -> Dict[str, float]:
    import ort_node
    runs = []
    for c in gold["encoder"]:
        n = len(c["token_ids"])
        P = np.zeros((1, len(c["group_sizes"]), n), np.float32)
        start = 0
        for i, k in enumerate(c["group_sizes"]):
            P[0, i, start:start + k] = 1.0 / k
            start += k
        runs.append((os.path.join(out, "encoder.onnx"), {"input_ids": np.array([c["token_ids"]], np.int64),
                     "attention_mask": np.ones((1, n), np.int64), "pool_matrix": P}))
    ids = np.array([gold["decoder"]["input_ids"]], np.int64)
    runs.append((os.path.join(out, "embed.onnx"), {"input_ids": ids}))
    res = ort_node.run_onnx(runs)
    diffs = {"encoder": 0.0, "cont": 0.0}
    for c, r in zip(gold["encoder"], res):
        diffs["encoder"] = max(diffs["encoder"], float(np.abs(r["embeddings"][0] - np.array(c["embeddings"])).max()))
        diffs["cont"] = max(diffs["cont"], float(np.abs(r["cont_embedding"][0, 0] - np.array(gold["cont"])).max()))
    emb = res[-1]["inputs_embeds"]
    s = ids.shape[1]
    L, kv, hd = DEC_CFG.n_layers, DEC_CFG.n_kv_heads, DEC_CFG.head_dim
    empty = {f"past_key_values.{i}.{n}": np.zeros((1, kv, 0, hd), np.float32) for i in range(L) for n in ("key", "value")}
    dec_path = os.path.join(out, "decoder.onnx")
    full = ort_node.run_onnx([(dec_path, dict(inputs_embeds=emb, attention_mask=np.ones((1, s), np.int64),
                                              position_ids=np.arange(s)[None].astype(np.int64), **empty)),
                              (dec_path, dict(inputs_embeds=emb[:, :-1], attention_mask=np.ones((1, s - 1), np.int64),
                                              position_ids=np.arange(s - 1)[None].astype(np.int64), **empty))])
    past = {f"past_key_values.{i}.{n}": full[1][f"present.{i}.{n}"] for i in range(L) for n in ("key", "value")}
    last = ort_node.run_onnx([(dec_path, dict(inputs_embeds=emb[:, -1:], attention_mask=np.ones((1, s), np.int64),
                                              position_ids=np.array([[s - 1]], np.int64), **past))])[0]
    diffs["logits_full"] = float(np.abs(full[0]["logits"][0] - np.array(gold["decoder"]["logits_full"])).max())
    diffs["logits_last"] = float(np.abs(last["logits"][0, -1] - np.array(gold["decoder"]["logits_last"])).max())
    diffs["greedy_mismatches"] = float(sum(ort_greedy(out, c["prompt_ids"], c["max_new_tokens"]) != c["output_ids"]
                                           for c in gold["greedy"]))
    return diffs


def ort_greedy(out: str, prompt: Sequence[int], n: int) -> List[int]:
    """Greedy decoding with embed.onnx + decoder.onnx and the KV cache, like a runtime does it."""
    import ort_node
    L, kv, hd = DEC_CFG.n_layers, DEC_CFG.n_kv_heads, DEC_CFG.head_dim
    past = {f"past_key_values.{i}.{k}": np.zeros((1, kv, 0, hd), np.float32) for i in range(L) for k in ("key", "value")}
    step_ids, start, result = list(prompt), 0, []
    for _ in range(n):
        ids = np.array([step_ids], np.int64)
        emb = ort_node.run_onnx([(os.path.join(out, "embed.onnx"), {"input_ids": ids})])[0]["inputs_embeds"]
        t = start + len(step_ids)
        r = ort_node.run_onnx([(os.path.join(out, "decoder.onnx"), dict(
            inputs_embeds=emb, attention_mask=np.ones((1, t), np.int64),
            position_ids=np.arange(start, t)[None].astype(np.int64), **past))])[0]
        past = {f"past_key_values.{i}.{k}": r[f"present.{i}.{k}"] for i in range(L) for k in ("key", "value")}
        nxt = int(np.argmax(r["logits"][0, -1]))
        result.append(nxt)
        start, step_ids = t, [nxt]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(export.__file__.rsplit(os.sep, 2)[0], "test", "fixtures", "tiny-arc"))
    ap.add_argument("--check", action="store_true", help="verify the ONNX files through onnxruntime-node")
    a = ap.parse_args()
    torch.set_num_threads(1)
    vocab, merges = train_bpe(CORPUS, VOCAB_SIZE)
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    os.makedirs(a.out, exist_ok=True)
    tok_path = os.path.join(a.out, "tokenizer.json")
    with open(tok_path, "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False, indent=1)
        f.write("\n")
    enc, dec = random_models()
    with torch.no_grad():
        export.export_package(a.out, dec, enc, 0, tok_path, {
            "name": "tiny-arc",
            "description": "Random weights: a test fixture for runtimes (made by tools/make_fixtures.py).",
            "license": "Apache-2.0",
            "encoder": {"maxChunkTokens": MAX_CHUNK_TOKENS, "source": "random (tools/make_fixtures.py)"},
        }, dtype="fp32", external=False)
        gold = golden(enc, dec, vocab, merges)
    gold_path = os.path.join(a.out, "golden.json")
    with open(gold_path, "w", encoding="utf-8") as f:
        json.dump(gold, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {a.out}")
    if a.check:
        diffs = check_package(a.out, gold)
        print(json.dumps(diffs))
        if diffs.pop("greedy_mismatches") or max(diffs.values()) >= 1e-4:
            raise SystemExit("onnxruntime-node does not reproduce golden.json")


if __name__ == "__main__":
    main()
