"""Builds the tokenizer and the tokenized corpus for tools/train.py.

    /usr/bin/python3 tools/prepare_data.py --out tools/.data --vocab 3072

Writes tokenizer.json, corpus.pt (train/held-out chunks as token ids with their QA) and the
held-out QA set as JSONL in the `arc-context eval` format.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus as C  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tools/.data")
    ap.add_argument("--node-modules", default="node_modules")
    ap.add_argument("--vocab", type=int, default=3072)
    ap.add_argument("--bpe-sample-mb", type=float, default=4.0)
    ap.add_argument("--max-chunk-tokens", type=int, default=256)
    ap.add_argument("--eval-rows", type=int, default=600)
    ap.add_argument("--tokenizer", default=None, help="reuse this tokenizer.json instead of training one")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    files = C.collect(a.node_modules)
    train_files = [f for f in files if not C.held_out(f.package)]
    test_files = [f for f in files if C.held_out(f.package)]
    print(f"files: {len(files)} train {len(train_files)} held-out {len(test_files)} "
          f"({sum(len(f.text) for f in files) / 1e6:.1f} MB) in {time.time() - t0:.0f}s", flush=True)

    if a.tokenizer:
        tok = bpe.Tokenizer.load(a.tokenizer)
    else:
        rng = random.Random(0)
        sample, size = [], 0
        for f in rng.sample(train_files, len(train_files)):
            sample.append(C.HEADER.format(path=f.path) + f.text)
            size += len(f.text)
            if size > a.bpe_sample_mb * 1e6:
                break
        t1 = time.time()
        vocab, merges = bpe.train(sample, a.vocab)
        tok = bpe.Tokenizer(vocab, merges)
        print(f"bpe: {len(vocab)} tokens from {size / 1e6:.1f} MB in {time.time() - t1:.0f}s", flush=True)
    tok.save(os.path.join(a.out, "tokenizer.json"))

    def count(s: str) -> int:
        return len(tok.encode(s))

    def build(fs):
        docs = []
        for f in fs:
            chunks = C.chunk_file(f.path, f.text, count, a.max_chunk_tokens)
            docs.append({
                "path": f.path, "package": f.package, "license": f.license,
                "chunks": [{"body": c.body, "start": c.start_line, "ids": tok.encode(c.render()),
                            "qa": [q.__dict__ for q in C.extract_qa(c)]} for c in chunks],
            })
        return docs

    t2 = time.time()
    train_docs, test_docs = build(train_files), build(test_files)
    n_tok = sum(len(c["ids"]) for d in train_docs for c in d["chunks"])
    n_bytes = sum(len(c["body"].encode()) for d in train_docs for c in d["chunks"])
    print(f"tokenized in {time.time() - t2:.0f}s: train {n_tok / 1e6:.2f}M tokens, "
          f"{n_bytes / max(n_tok, 1):.2f} bytes/token", flush=True)
    kinds = Counter(q["kind"] for d in train_docs for c in d["chunks"] for q in c["qa"])
    print("train QA by kind:", dict(kinds), flush=True)
    torch.save({"train": train_docs, "test": test_docs, "max_chunk_tokens": a.max_chunk_tokens},
               os.path.join(a.out, "corpus.pt"))

    # held-out QA: the answer's chunk plus 0-3 distractor chunks from the same package
    rng = random.Random(1)
    by_pkg = {}
    for d in test_docs:
        by_pkg.setdefault(d["package"], []).append(d)
    rows, per_kind = [], Counter()
    cands = [(d, c, q) for d in test_docs for c in d["chunks"] for q in c["qa"]]
    rng.shuffle(cands)
    for d, c, q in cands:
        if per_kind[q["kind"]] >= a.eval_rows // 3:
            continue
        others = [(od, oc) for od in by_pkg[d["package"]] for oc in od["chunks"] if oc is not c]
        picked = rng.sample(others, min(len(others), rng.choice((0, 1, 2, 3))))
        names_elsewhere = set()
        for od, oc in picked:
            names_elsewhere |= {x["name"] for x in oc["qa"]}
        if q["name"] in names_elsewhere or q["name"] in {x["name"] for x in c["qa"] if x is not q and x["kind"] == q["kind"] and x["answer"] != q["answer"]}:
            continue  # ambiguous
        files = [{"path": od["path"], "text": oc["body"]} for od, oc in picked] + [{"path": d["path"], "text": c["body"]}]
        rng.shuffle(files)
        per_kind[q["kind"]] += 1
        rows.append({"id": f"{q['kind']}-{len(rows)}", "kind": q["kind"], "question": q["question"],
                     "answers": [q["answer"]], "files": files})
    with open(os.path.join(a.out, "heldout-qa.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"held-out QA rows: {len(rows)} {dict(per_kind)}; total {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
