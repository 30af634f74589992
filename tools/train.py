"""Trains the bundled default model `arc-tiny-code`: a small code decoder, then an ARC x4 encoder.

    /usr/bin/python3 tools/train.py --config tools/configs/arc-tiny-code.json --run runs/tiny

One script, one config, fixed seeds. Stages (steps per stage in the config):
  copy   decoder: synthetic documents in the real document format with key/value and
         definition lookups over a small vocabulary of names (installs in-context copying),
         plus code LM.
  code   decoder: code LM on real files + renamed real QA over real chunks + synthetic QA.
  arc    decoder frozen; encoder (initialised from the decoder's first layers) + projector:
         reconstruction / continuation pretraining (20% / 80%).
  arcqa  decoder frozen; QA with compressed contexts (+ some continuation to keep it general).
Every `ckpt_every` steps the state is written to RUN/ckpt.pt (atomic); rerunning the same
command resumes. Evaluation on held-out QA (exact match per kind and mode) goes to
RUN/log.jsonl; `--export DIR` writes the arc-model/1 package with tools/export.py.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

# OpenBLAS starts its own thread pool regardless of torch.set_num_threads; on this 2-core
# machine its spinning threads cost more than they give (measured: 175% CPU, mostly system time).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import torch  # noqa: E402
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus as C  # noqa: E402
from model import (ArcEncoder, Decoder, DecoderConfig, EncoderConfig, encode_documents,  # noqa: E402
                   group_sizes)

def load_corpus(data_dir: str) -> dict:
    """corpus.pt, or corpus.pt.xz as packed for the GPU run (tools/pack_gpu_run.py)."""
    path = os.path.join(data_dir, "corpus.pt")
    if os.path.exists(path):
        return torch.load(path)
    import io
    import lzma
    with lzma.open(path + ".xz", "rb") as f:
        return torch.load(io.BytesIO(f.read()))


def save_final(run: str, dec, enc, state: dict, cfg: dict) -> None:
    """Weights in separate files (each well under 16 MB for the configs we ship), for carrying
    a GPU run's result back; tools/package_default.py reads them when there is no ckpt.pt."""
    torch.save({k: v.detach().cpu() for k, v in dec.state_dict().items()}, os.path.join(run, "final-dec.pt"))
    torch.save({k: v.detach().cpu() for k, v in enc.state_dict().items()}, os.path.join(run, "final-enc.pt"))
    with open(os.path.join(run, "final-state.json"), "w") as f:
        json.dump({"state": state, "config": cfg}, f)


DEV = torch.device("cpu")  # set by --device; every tensor the trainer makes goes there
# config "compressed_headers": each compressed chunk is preceded by its "### path" header as text
# (manifest documentFormat.compressedHeader, docs/DESIGN.md); set by main()
HEADERS = False


def header_ids(data, path: str) -> List[int]:
    return data.enc(C.HEADER.format(path=path)) if HEADERS else []


def tt(x, dtype=torch.long) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype, device=DEV)


# --------------------------------------------------------------------------- data


class Data:
    def __init__(self, data_dir: str, seed: int):
        self.tok = bpe.Tokenizer.load(os.path.join(data_dir, "tokenizer.json"))
        blob = load_corpus(data_dir)
        self.train, self.test = blob["train"], blob["test"]
        self.max_chunk = blob["max_chunk_tokens"]
        self.rng = random.Random(seed)
        words = set()
        for d in self.train:
            for c in d["chunks"]:
                for q in c["qa"]:
                    words.update(p.lower() for p in q["name"].replace("_", " ").split())
        self.words = sorted(w for w in words if w.isalpha())
        self.namer = C.Namer(self.words, seed)
        # a small name vocabulary of single-token words for the copy stage
        single = [w for w in self.words if len(self.tok.encode(w)) == 1 and len(w) >= 3]
        self.small_namer = C.Namer(random.Random(seed).sample(single, min(96, len(single))), seed + 1)
        self.qa_pool = [(di, ci, qi) for di, d in enumerate(self.train) for ci, c in enumerate(d["chunks"])
                        for qi, _ in enumerate(c["qa"])]
        self.by_pkg: Dict[str, List[int]] = {}
        for di, d in enumerate(self.train):
            self.by_pkg.setdefault(d["package"], []).append(di)
        self.prompt_cache: Dict[str, List[int]] = {}

    def enc(self, s: str) -> List[int]:
        return self.tok.encode(s)

    # ---- synthetic documents in the real format

    def synth_chunk(self, namer: C.Namer, small_values: bool) -> Tuple[C.Chunk, List[C.QA]]:
        r = self.rng
        lines, qa = [], []
        path = namer.path(r.choice((".py", ".py", ".js", ".ts")))
        for _ in range(r.randint(2, 6)):
            kind = r.random()
            name = namer.ident()
            if kind < 0.45:
                if small_values or r.random() < 0.5:
                    val = str(r.randint(0, 999))
                else:
                    quote = r.choice(("'", '"'))
                    val = quote + namer.ident() + quote
                lines.append(f"{name} = {val}")
                qa.append(C.QA("value", name, C.Q_VALUE.format(name=name), val))
            elif kind < 0.85:
                params = ", ".join(namer.ident() for _ in range(r.randint(1, 3)))
                lines.append(f"def {name}({params}):")
                lines.append(f"    return {namer.ident()}")
                qa.append(C.QA("params", name, C.Q_PARAMS.format(name=name), params))
                qa.append(C.QA("file", name, C.Q_FILE.format(name=name), path))
            else:
                lines.append(f"class {name}:")
                lines.append(f"    {namer.ident()} = {r.randint(0, 99)}")
                qa.append(C.QA("file", name, C.Q_FILE.format(name=name), path))
        return C.Chunk(path, "\n".join(lines) + "\n", 1), qa

    def synth_example(self, small: bool, n_questions: int = 1):
        """1-4 synthetic chunks and one question whose name is defined exactly once
        (or a list of up to n_questions such questions when n_questions > 1)."""
        namer = self.small_namer if small else self.namer
        chunks, allqa = [], []
        for _ in range(self.rng.randint(1, 4)):
            c, q = self.synth_chunk(namer, small)
            chunks.append(c)
            allqa.extend(q)
        defined = [q.name for q in allqa if q.kind != "file" or not any(
            x.kind == "params" and x.name == q.name for x in allqa)]
        unique = [q for q in allqa if defined.count(q.name) == 1]
        if not unique:
            return self.synth_example(small, n_questions)
        if n_questions > 1:
            return chunks, self.rng.sample(unique, min(n_questions, len(unique)))
        return chunks, self.rng.choice(unique)

    def repeat_example(self, n: int, reps: int = 2) -> Tuple[List[int], List[int]]:
        """Induction drill: a random token run repeated `reps` times on separate lines; the loss
        is on every copy after the first (the only way to predict them is to look back)."""
        if not hasattr(self, "_drill_pool"):
            self._drill_pool = sorted({t for w in self.small_namer.words for t in self.enc(w)} |
                                      {t for s in ("_", ", ", " = ", "(", ")", ".", "/") for t in self.enc(s)})
        run = [self.rng.choice(self._drill_pool) for _ in range(n)]
        nl = self.enc("\n")
        ids, mask = [bpe.BOS] + run, [0] * (1 + n)
        for _ in range(reps - 1):
            ids += nl + run
            mask += [0] * len(nl) + [0] + [1] * (n - 1)
        return ids, mask

    # ---- real QA

    def real_example(self, budget: int = 440, rename: bool = True) -> Tuple[List[C.Chunk], C.QA]:
        """The answer's chunk plus 0-3 chunks of the same package, within `budget` tokens."""
        r = self.rng
        while True:
            di, ci, qi = r.choice(self.qa_pool)
            d = self.train[di]
            c = d["chunks"][ci]
            q = C.QA(**c["qa"][qi])
            others = [(self.train[o], oc) for o in self.by_pkg[d["package"]] for oc in self.train[o]["chunks"] if oc is not c]
            picked, used = [], len(c["ids"])
            for od, oc in r.sample(others, min(len(others), r.choice((0, 1, 1, 2, 3)))):
                if used + len(oc["ids"]) <= budget:
                    picked.append((od, oc))
                    used += len(oc["ids"])
            if used > budget or any(q.name in {x["name"] for x in oc["qa"]} for _, oc in picked):
                continue
            chunks = [C.Chunk(od["path"], oc["body"], oc["start"]) for od, oc in picked] + [C.Chunk(d["path"], c["body"], c["start"])]
            r.shuffle(chunks)
            if rename:
                chunks, q = C.rename(chunks, q, self.namer, 0)
            return chunks, q

    def lm_window(self, T: int) -> List[int]:
        d = self.rng.choice(self.train)
        ids = [t for c in d["chunks"] for t in c["ids"]]
        if len(ids) <= T - 1:
            return [bpe.BOS] + ids
        s = self.rng.randint(0, len(ids) - (T - 1))
        return [bpe.BOS] + ids[s:s + T - 1]

    def prompt_ids(self, question: str) -> List[int]:
        return self.enc(C.QUESTION_TEMPLATE.format(question=question))


def qa_turns(data: Data, q) -> Tuple[List[int], List[int]]:
    """Question/answer lines after a context: (ids, loss mask on the answers). `q` is one QA or a
    list of them, asked one after the other."""
    ids: List[int] = []
    mask: List[int] = []
    for one in (q if isinstance(q, list) else [q]):
        prompt, ans = data.prompt_ids(one.question), data.enc(one.answer + C.ANSWER_END)
        ids += prompt + ans
        mask += [0] * len(prompt) + [1] * len(ans)
    return ids, mask


def qa_sequence(data: Data, chunks: Sequence[C.Chunk], q, T: int) -> Optional[Tuple[List[int], List[int]]]:
    """Full-text QA: (ids, loss mask on answers), see qa_turns. None if it does not fit in T."""
    ctx = [bpe.BOS] + [t for c in chunks for t in data.enc(c.render())]
    turns, answers = qa_turns(data, q)
    ids, mask = ctx + turns, [0] * len(ctx) + answers
    if len(ids) > T:
        return None
    return ids, mask


def pad_batch(seqs: List[Tuple[List[int], List[int]]]) -> Tuple[torch.Tensor, torch.Tensor]:
    L = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), L), bpe.PAD, dtype=torch.long)
    mask = torch.zeros(len(seqs), L)
    for i, (s, m) in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(m)] = torch.tensor(m, dtype=torch.float)
    return ids.to(DEV), mask.to(DEV)


def lm_loss(dec: Decoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    logits, _ = dec(dec.embed(ids[:, :-1]))
    tgt_mask = mask[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
    return (loss * tgt_mask.reshape(-1)).sum() / tgt_mask.sum().clamp(min=1)


# --------------------------------------------------------------------------- ARC batches


def item_segments(it: dict) -> List[Tuple[str, List[int]]]:
    """An item's prefix as segments: ("t", token ids read as text) or ("c", token ids compressed
    by the encoder, followed by <Rec>/<Cont>). Legacy items give "before" + "docs"."""
    if "segments" in it:
        return it["segments"]
    return [("t", it["before"])] + [("c", d) for d in it["docs"]]


def arc_forward(dec: Decoder, enc: ArcEncoder, items: List[dict], per_item: bool = False) -> torch.Tensor:
    """items: {"segments": [("t"|"c", ids), ...]} (or "before": ids + "docs": [token lists to
    compress]), "special": "cont"|"rec", "after": ids, and either "loss_from": index into after
    where loss starts, or "loss_mask": one 0/1 per after token}. One decoder pass; the prefix is
    the segments in order (text as token embeddings, compressed as vectors + <Cont>), then after."""
    segs = [item_segments(it) for it in items]
    all_docs = [ids for sg in segs for kind, ids in sg if kind == "c"]
    vecs = encode_documents(enc, all_docs) if all_docs else []
    cont, rec = enc.cont(), enc.rec()
    seqs, targets = [], []
    k = 0
    for it, sg in zip(items, segs):
        parts = []
        for kind, ids in sg:
            if kind == "t":
                if ids:
                    parts.append(dec.embed(tt(ids)))
            else:
                parts.append(vecs[k])
                parts.append((rec if it.get("special") == "rec" else cont).unsqueeze(0))
                k += 1
        prefix_len = sum(p.shape[0] for p in parts)
        after = tt(it["after"])
        parts.append(dec.embed(after[:-1]))
        seqs.append(torch.cat(parts))
        tgt = torch.full((prefix_len - 1 + len(it["after"]),), -100, dtype=torch.long, device=DEV)
        if "loss_mask" in it:  # several answers, each supervised (the prompts between them are not)
            on = torch.tensor(it["loss_mask"], dtype=torch.bool, device=DEV)
            tgt[prefix_len - 1:][on] = after[on]
        else:
            tgt[prefix_len - 1 + it["loss_from"]:] = after[it["loss_from"]:]
        targets.append(tgt)
    L = max(s.shape[0] for s in seqs)
    x = torch.zeros(len(seqs), L, dec.cfg.dim, device=DEV)
    y = torch.full((len(seqs), L), -100, dtype=torch.long, device=DEV)
    for i, (s, t) in enumerate(zip(seqs, targets)):
        x[i, : s.shape[0]] = s
        y[i, : t.shape[0]] = t
    logits, _ = dec(x)
    if not per_item:  # mean over every supervised token of the batch
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)
    # mean per item, then over items: a short answer weighs as much as a 100-token continuation
    tok = F.cross_entropy(logits.transpose(1, 2), y, ignore_index=-100, reduction="none")
    on = (y != -100).float()
    return ((tok * on).sum(1) / on.sum(1).clamp(min=1)).mean()


def kd_loss(dec: Decoder, teacher: Decoder, seqs: List[List[int]]) -> torch.Tensor:
    """Distillation on text-only sequences: KL(teacher || student) of the next-token distributions,
    averaged over every position. Keeps the jointly trained decoder's plain-text reading close to
    a frozen copy of an earlier decoder (config "distill"; --teacher)."""
    ids, mask = pad_batch([(s, [1] * len(s)) for s in seqs])
    logits, _ = dec(dec.embed(ids[:, :-1]))
    with torch.no_grad():
        t_logits, _ = teacher(teacher.embed(ids[:, :-1]))
        t_logp = F.log_softmax(t_logits, -1)
    kl = (t_logp.exp() * (t_logp - F.log_softmax(logits, -1))).sum(-1)
    on = mask[:, 1:].float()
    return (kl * on).sum() / on.sum().clamp(min=1)


def text_sequence(it: dict) -> List[int]:
    """An all-text window item (form "full") as one token sequence: prefix segments, then after."""
    return [t for _, ids in item_segments(it) for t in ids] + list(it["after"])


def arc_pretrain_item(data: Data, rec_frac: float) -> dict:
    ids = data.lm_window(data.max_chunk + 129)[1:]
    if data.rng.random() < rec_frac:
        doc = ids[: data.rng.randint(32, data.max_chunk)]
        return {"docs": [doc], "special": "rec", "before": [bpe.BOS], "after": doc, "loss_from": 0}
    cut = data.rng.randint(16, min(data.max_chunk, len(ids) - 16)) if len(ids) > 48 else len(ids) // 2
    return {"docs": [ids[:cut]], "special": "cont", "before": [bpe.BOS], "after": ids[cut:cut + 96], "loss_from": 0}


def arc_qa_item(data: Data, chunks: Sequence[C.Chunk], q) -> dict:
    """QA over compressed chunks; `q` is one QA or a list asked one after the other (qa_turns),
    each answer supervised."""
    after, mask = qa_turns(data, q)
    segs = [("t", [bpe.BOS])]
    for c in chunks:
        h = header_ids(data, c.path)
        if h:
            segs.append(("t", h))
        segs.append(("c", data.enc(c.render())[: data.max_chunk]))
    return {"segments": segs, "special": "cont", "after": after, "loss_mask": mask}


# --------------------------------------------------------------------------- window-shaped items


def mentions(body: str, name: str) -> int:
    """How often `name` occurs in `body` as a whole identifier."""
    if name not in body:  # most chunks: no regex
        return 0
    return len(C.ident_re(name).findall(body))


class WindowSource:
    """Items at the shape `ask --root` gives the decoder: many chunks of several files of one
    package (plus some from other packages) filling most of the window, questions about some of
    them. Used for training (train split, renamed) and for the in-training eval (held-out split)."""

    rank_layout = False

    def __init__(self, data: Data, docs: List[dict], rank_layout: bool = False):
        self.data, self.docs = data, docs
        # config "rank_layout": chunks in the order picked (the asked chunk first, as the ranker
        # puts it; the others as a ranker would with hard distractors, else shuffled), text chunks
        # before compressed ones: the prefix of the manifest's prompt.contextOrder "rank"
        self.rank_layout = rank_layout
        self.by_pkg: Dict[str, List[int]] = {}
        for di, d in enumerate(docs):
            self.by_pkg.setdefault(d["package"], []).append(di)
        self.qa_pool = [(di, ci, qi) for di, d in enumerate(docs) for ci, c in enumerate(d["chunks"])
                        for qi, _ in enumerate(c["qa"])]
        self.x = None  # pooling factor, set on first use

    def costs(self, ids: List[int], header: int = 0) -> Tuple[int, int]:
        """(positions as text, positions compressed incl. <Cont> and, with HEADERS, the header
        tokens) of one rendered chunk."""
        ids = ids[: self.data.max_chunk]
        return len(ids), len(group_sizes(len(ids), self.x or 4)) + 1 + header

    def pick(self, rng: random.Random, target: int, forms: str, text_budget: int, p_answer_text: float,
             n_questions: int, hard: bool = False):
        """Chooses chunks and questions. forms: "arc" (all compressed), "full" (all text), "mixed"
        (the answer's chunk as text with p_answer_text, others as text while text_budget lasts
        and a coin says so, the rest compressed). hard: the other chunks are taken as a lexical
        ranker would rank them for the question, those that mention the asked name most first
        (the distractors `ask --root` puts beside the answer), instead of in random order.
        Returns (chunks, is_text flags, QAs) or None."""
        di, ci, qi = rng.choice(self.qa_pool)
        d = self.docs[di]
        first = C.QA(**d["chunks"][ci]["qa"][qi])
        cands = [(o, oc) for o in self.by_pkg[d["package"]] for oc in range(len(self.docs[o]["chunks"]))
                 if (o, oc) != (di, ci)]
        for _ in range(rng.choice((0, 2, 4, 8))):  # distractors from other packages
            o = rng.randrange(len(self.docs))
            cands.append((o, rng.randrange(len(self.docs[o]["chunks"]))))
        rng.shuffle(cands)
        if hard:  # stable: equal mention counts stay shuffled
            cands.sort(key=lambda c: -mentions(self.docs[c[0]]["chunks"][c[1]]["body"], first.name))
        hl = lambda doc: len(header_ids(self.data, doc["path"]))  # noqa: E731
        t0, c0 = self.costs(d["chunks"][ci]["ids"], hl(d))
        ans_text = forms == "full" or (forms == "mixed" and rng.random() < p_answer_text)
        picked = [((di, ci), ans_text)]
        used, text_used = (t0 if ans_text else c0), (t0 if ans_text else 0)
        for o, oc in cands:
            if used >= target - 6:
                break
            ch = self.docs[o]["chunks"][oc]
            if first.name in {x["name"] for x in ch["qa"]}:
                continue  # the asked name must be defined once
            tc, cc = self.costs(ch["ids"], hl(self.docs[o]))
            as_text = forms == "full" or (forms == "mixed" and text_used + tc <= text_budget and rng.random() < 0.5)
            cost = tc if as_text else cc
            if used + cost > target:
                continue
            picked.append(((o, oc), as_text))
            used += cost
            text_used += tc if as_text else 0
        # further questions: names defined exactly once among the picked chunks
        counts: Dict[str, int] = {}
        for (o, oc), _ in picked:
            for name in {x["name"] for x in self.docs[o]["chunks"][oc]["qa"]}:
                counts[name] = counts.get(name, 0) + 1
        extra = [C.QA(**x) for (o, oc), _ in picked[1:] for x in self.docs[o]["chunks"][oc]["qa"]
                 if counts[x["name"]] == 1 and x["name"] != first.name]
        seen, qs = {first.name}, [first]
        for q in rng.sample(extra, len(extra)):
            if len(qs) >= n_questions:
                break
            if q.name not in seen:
                seen.add(q.name)
                qs.append(q)
        chunks = [C.Chunk(self.docs[o]["path"], self.docs[o]["chunks"][oc]["body"], self.docs[o]["chunks"][oc]["start"])
                  for (o, oc), _ in picked]
        return chunks, [t for _, t in picked], qs

    def item(self, rng: random.Random, T: int, forms: str, target: int, text_budget: int = 160,
             p_answer_text: float = 0.8, n_questions: int = 1, rename: bool = True,
             hard: bool = False) -> Optional[dict]:
        """A training item in the mixed prefix layout (docs/DESIGN.md): [BOS], compressed chunks
        in document order (vectors + <Cont>), text chunks in document order, then the questions
        (with rank_layout: text chunks, then compressed ones, each in the order picked)."""
        got = self.pick(rng, target, forms, text_budget, p_answer_text, n_questions, hard)
        chunks, is_text, qs = got
        if rename:
            renamed = []
            for k in range(len(qs)):
                q = qs[k]
                chunks, nq = C.rename(chunks, q, self.data.namer, 0)
                if q.kind == "file":  # later file questions about the same file follow the new path
                    qs = qs[:k + 1] + [C.QA(x.kind, x.name, x.question, nq.answer) if x.kind == "file" and x.answer == q.answer
                                       else x for x in qs[k + 1:]]
                renamed.append(nq)
            qs = renamed
        return self.layout(chunks, is_text, qs, T)

    def layout(self, chunks: List[C.Chunk], is_text: List[bool], qs: list, T: int) -> Optional[dict]:
        data = self.data
        after, mask = qa_turns(data, qs)
        order = (list(range(len(chunks))) if self.rank_layout
                 else sorted(range(len(chunks)), key=lambda i: (chunks[i].path, chunks[i].start_line)))
        ids = {i: data.enc(chunks[i].render())[: data.max_chunk] for i in order}
        heads = {i: header_ids(data, chunks[i].path) for i in order}
        keep = set(order)
        answer_paths = {q.answer for q in qs if q.kind == "file"}

        def holds_answer(i: int) -> bool:
            return chunks[i].path in answer_paths or any(q.name in chunks[i].body for q in qs)

        def total() -> int:
            return 1 + len(after) + sum(self.costs(ids[i], len(heads[i]))[0 if is_text[i] else 1] for i in keep)

        for i in reversed(order):  # over the window after renaming: drop chunks no question needs
            if total() <= T:
                break
            if not holds_answer(i):
                keep.discard(i)
        if total() > T:
            return None
        segs = [("t", [bpe.BOS])]
        text = [t for i in order if i in keep and is_text[i] for t in ids[i]]
        if text and self.rank_layout:
            segs.append(("t", text))
        for i in order:
            if i in keep and not is_text[i]:
                if heads[i]:
                    segs.append(("t", heads[i]))
                segs.append(("c", ids[i]))
        if text and not self.rank_layout:
            segs.append(("t", text))
        return {"segments": segs, "special": "cont", "after": after, "loss_mask": mask,
                "n_text": sum(1 for i in keep if is_text[i]), "n_comp": sum(1 for i in keep if not is_text[i])}


def em_by_kind(hits: Dict[str, List[int]]) -> Dict[str, float]:
    """Exact match per question kind and over all rows, from 0/1 hits per kind."""
    out = {k: round(sum(v) / len(v), 4) for k, v in sorted(hits.items())}
    allh = [x for v in hits.values() for x in v]
    out["all"] = round(sum(allh) / max(len(allh), 1), 4)
    return out


@torch.no_grad()
def window_eval(data: Data, dec: Decoder, enc: ArcEncoder, rows: List[dict], T: int) -> Dict[str, Dict[str, float]]:
    """Exact match on held-out window-shaped rows (see window_rows), per mode and kind."""
    res: Dict[str, Dict[str, float]] = {}
    for mode in ("full", "mixed", "arc"):
        hits: Dict[str, List[int]] = {}
        for r in rows:
            it = r[mode]
            if it is None:
                continue
            parts = []
            for kind, ids in it["segments"]:
                if kind == "t":
                    parts.append(dec.embed(tt(ids)))
                else:
                    parts.extend([encode_documents(enc, [ids])[0], enc.cont().unsqueeze(0)])
            parts.append(dec.embed(tt(data.prompt_ids(r["q"].question))))
            pred = greedy(dec, torch.cat(parts), 24, "\n", data.tok)
            hits.setdefault(r["q"].kind, []).append(int(pred.strip() == r["q"].answer.strip()))
        res[mode] = em_by_kind(hits)
    return res


def window_rows(data: Data, n: int, T: int, seed: int = 17, rank_layout: bool = False) -> List[dict]:
    """Held-out rows at the shape of use: one question; its chunk among others of the package
    filling ~440 compressed positions. Modes on the same chunks: arc (all compressed), mixed (the
    answer's chunk as text, as the ranker would put it, the rest compressed as far as they fit),
    full (the answer's chunk and as many others as fit, as text)."""
    src = WindowSource(data, data.test, rank_layout)
    rng = random.Random(seed)
    rows = []
    while len(rows) < n:
        chunks, _, qs = src.pick(rng, 440, "arc", 0, 0.0, 1)
        q = qs[0]
        order = list(range(len(chunks)))  # chunk 0 holds the answer
        row = {"q": q}
        row["arc"] = src.layout(chunks, [False] * len(chunks), [q], T)
        row["mixed"] = src.layout(chunks, [i == 0 for i in order], [q], T)
        # full: answer's chunk first, then others while they fit as text
        tf, room = [0], T - 1 - len(qa_turns(data, [q])[0]) - src.costs(data.enc(chunks[0].render()))[0]
        for i in order[1:]:
            c = src.costs(data.enc(chunks[i].render()))[0]
            if c <= room:
                tf.append(i)
                room -= c
        row["full"] = src.layout([chunks[i] for i in tf], [True] * len(tf), [q], T)
        if row["arc"] is not None:
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def greedy(dec: Decoder, prefix: torch.Tensor, max_new: int, stop_id_text, tok: bpe.Tokenizer) -> str:
    logits, past = dec(prefix.unsqueeze(0))
    out: List[int] = []
    for _ in range(max_new):
        nxt = int(logits[0, -1].argmax())
        if nxt == bpe.EOS:
            break
        out.append(nxt)
        text = tok.decode(out)
        if "\n" in text:
            return text.split("\n")[0]
        logits, past = dec(dec.embed(tt([[nxt]])), past=past)
    return tok.decode(out).split("\n")[0]


@torch.no_grad()
def evaluate(data: Data, dec: Decoder, enc: Optional[ArcEncoder], rows: List[dict], modes: Sequence[str],
             T: int) -> Dict[str, Dict[str, float]]:
    res: Dict[str, Dict[str, float]] = {}
    for mode in modes:
        hits: Dict[str, List[int]] = {}
        for r in rows:
            chunks = [c for f in r["files"] for c in C.chunk_file(f["path"], f["text"], lambda s: len(data.enc(s)), data.max_chunk)]
            prompt = tt(data.prompt_ids(r["question"]))
            parts = [dec.embed(tt([bpe.BOS]))]
            if mode == "full":
                ctx = [t for c in chunks for t in data.enc(c.render())]
                ctx = ctx[-(T - 1 - len(prompt) - 24):]
                parts.append(dec.embed(tt(ctx)))
            elif mode == "arc":
                docs = [data.enc(c.render())[: data.max_chunk] for c in chunks]
                for c, v in zip(chunks, encode_documents(enc, docs)):
                    h = header_ids(data, c.path)
                    if h:
                        parts.append(dec.embed(tt(h)))
                    parts.extend([v, enc.cont().unsqueeze(0)])
            parts.append(dec.embed(prompt))
            pred = greedy(dec, torch.cat(parts), 24, "\n", data.tok)
            hits.setdefault(r["kind"], []).append(int(pred.strip() == r["answers"][0].strip()))
        res[mode] = em_by_kind(hits)
    return res


@torch.no_grad()
def continuation_nll(data: Data, dec: Decoder, enc: Optional[ArcEncoder], n: int = 24, prefix: int = 192,
                     cont: int = 64) -> Dict[str, float]:
    """Mean NLL of held-out code continuations given no context, the prefix as text, and the
    prefix compressed by the encoder (+ <Cont>): shows whether compressed context is read."""
    rng = random.Random(11)
    docs = [d for d in data.test if sum(len(c["ids"]) for c in d["chunks"]) > prefix + cont]
    sums = {"none": 0.0, "full": 0.0, "arc": 0.0}
    for _ in range(n):
        ids = [t for c in rng.choice(docs)["chunks"] for t in c["ids"]]
        s = rng.randint(0, len(ids) - prefix - cont)
        pre, tgt = ids[s:s + prefix], ids[s + prefix:s + prefix + cont]
        variants = {"none": [dec.embed(tt([bpe.BOS]))], "full": [dec.embed(tt([bpe.BOS] + pre))]}
        if enc is not None:
            variants["arc"] = [dec.embed(tt([bpe.BOS])), encode_documents(enc, [pre])[0], enc.cont().unsqueeze(0)]
        for k, parts in variants.items():
            x = torch.cat(parts + [dec.embed(tt(tgt[:-1]))])
            logits, _ = dec(x.unsqueeze(0))
            lp = torch.log_softmax(logits[0, -len(tgt):].float(), -1)
            sums[k] += float(-lp.gather(-1, tt(tgt).unsqueeze(-1)).mean())
    return {k: round(v / n, 4) for k, v in sums.items() if k != "arc" or enc is not None}


def synth_rows(data: Data, n: int, small: bool, seed: int) -> List[dict]:
    saved = data.rng
    data.rng = random.Random(seed)
    rows = []
    for i in range(n):
        chunks, q = data.synth_example(small)
        rows.append({"id": f"s{i}", "kind": q.kind, "question": q.question, "answers": [q.answer],
                     "files": [{"path": c.path, "text": c.body} for c in chunks]})
    data.rng = saved
    return rows


# --------------------------------------------------------------------------- main loop


def init_weights(dec: Decoder) -> None:
    """GPT-2 style: N(0, 0.02), residual output projections scaled by 1/sqrt(2 * layers)."""
    with torch.no_grad():
        for name, p in dec.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * dec.cfg.n_layers) if name.endswith(("wo.weight", "w2.weight")) else 0.02
                p.normal_(0.0, std)


def lr_at(step: int, progress: float, base: float, warmup: int) -> float:
    """Linear warmup, then cosine to 10% over the stage's progress (0..1)."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def grow_encoder_from(enc: ArcEncoder, dec: Decoder, src) -> None:
    """Loads a checkpoint's encoder into `enc`, which may have more layers than the checkpoint's.

    The checkpoint's last (pooling) layer stays last and its other layers stay first; each added
    layer goes in between, initialised from the decoder layer of the same index (as the paper
    starts an encoder from an LM) with its attention output and feed-forward down projections
    zeroed: an added layer starts as the identity on the residual stream, so the grown encoder
    computes exactly what the checkpoint's did and training can only move on from there.
    """
    names = src.keys() if hasattr(src, "keys") else []
    old_n = 1 + max((int(k.split(".")[2]) for k in names if k.startswith("encoder.layers.")), default=-1)
    new_n = len(enc.layers)
    if old_n == 0:
        raise SystemExit("the --init-from checkpoint has no encoder layers")
    if old_n > new_n:
        raise SystemExit(f"the config's encoder has {new_n} layers, fewer than the checkpoint's {old_n}")
    where = {i: i for i in range(old_n - 1)}
    where[new_n - 1] = old_n - 1  # the pooling layer stays last
    for k, v in enc.state_dict().items():
        if k.startswith("layers."):
            i = int(k.split(".")[1])
            rest = k.split(".", 2)[2]
            if i in where:
                v.copy_(torch.as_tensor(src.get(f"encoder.layers.{where[i]}.{rest}")))
            else:
                v.copy_(dec.layers[i].state_dict()[rest] if i < len(dec.layers) else dec.layers[-1].state_dict()[rest])
                if rest in ("attention.wo.weight", "feed_forward.w2.weight"):
                    v.zero_()
        else:
            v.copy_(torch.as_tensor(src.get("encoder." + k)))
    if new_n > old_n:
        print(f"encoder grown from {old_n} to {new_n} layers (added layers start as the identity)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tools/configs/arc-tiny-code.json")
    ap.add_argument("--run", default="runs/arc-tiny-code")
    ap.add_argument("--data", default="tools/.data")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stop-after", default=None, help="stop once this stage is finished")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (with a checkpoint) after this long")
    ap.add_argument("--init-from", default=None,
                    help="start a new run from a package's weights.safetensors (decoder.* / encoder.* tensors)")
    ap.add_argument("--start-stage", default=None, help="with --init-from: the stage to begin with")
    ap.add_argument("--init-decoder-from", default=None,
                    help="with --init-from: take the decoder.* tensors from this weights.safetensors instead")
    ap.add_argument("--teacher", default=None,
                    help="weights.safetensors whose frozen decoder is the teacher of a stage's \"distill\" term")
    a = ap.parse_args()
    global DEV
    DEV = torch.device(a.device)
    torch.set_num_threads(a.threads)
    if DEV.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = json.load(open(a.config))
    global HEADERS
    HEADERS = bool(cfg.get("compressed_headers", False))
    os.makedirs(a.run, exist_ok=True)
    seed = cfg.get("seed", 0)
    torch.manual_seed(seed)
    data = Data(a.data, seed)
    dcfg = DecoderConfig(vocab_size=len(data.tok.vocab), **cfg["decoder"])
    dec = Decoder(dcfg)
    init_weights(dec)
    ecfg = EncoderConfig(vocab_size=len(data.tok.vocab), dim=dcfg.dim, n_heads=dcfg.n_heads,
                         n_kv_heads=dcfg.n_kv_heads, head_dim=dcfg.head_dim, hidden_dim=dcfg.hidden_dim,
                         norm_eps=dcfg.norm_eps, rope_theta=dcfg.rope_theta, rope_layout=dcfg.rope_layout,
                         out_dim=dcfg.dim, **cfg["encoder"])
    enc = ArcEncoder(ecfg)
    if a.init_from:
        import safetensors_io
        ck_in = safetensors_io.open_checkpoint(a.init_from)
        with torch.no_grad():
            for prefix, mod in (("decoder.", dec), ("encoder.", enc)):
                src = ck_in
                if prefix == "decoder." and a.init_decoder_from:
                    src = safetensors_io.open_checkpoint(a.init_decoder_from)
                if prefix == "encoder.":
                    grow_encoder_from(enc, dec, src)
                    continue
                for k, v in mod.state_dict().items():
                    v.copy_(torch.as_tensor(src.get(prefix + k)))
    teacher = None
    if a.teacher:
        import safetensors_io
        ck_t = safetensors_io.open_checkpoint(a.teacher)
        teacher = Decoder(dcfg)
        with torch.no_grad():
            for k, v in teacher.state_dict().items():
                v.copy_(torch.as_tensor(ck_t.get("decoder." + k)))
        teacher.to(DEV).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    dec.to(DEV)
    enc.to(DEV)
    T = dcfg.context_length
    stages = cfg["stages"]
    state = {"stage": 0, "step": 0, "tokens": 0, "seconds": 0.0, "stage_seconds": 0.0}
    if a.init_from and a.start_stage:
        state["stage"] = [s["name"] for s in cfg["stages"]].index(a.start_stage)
    ck = os.path.join(a.run, "ckpt.pt")
    opt, blob = None, None
    if os.path.exists(ck):
        blob = torch.load(ck, map_location=DEV)
        dec.load_state_dict(blob["dec"])
        enc.load_state_dict(blob["enc"])
        state = blob["state"]
        # a resumed run must not replay the examples it already trained on
        data.rng.seed(seed * 1_000_003 + state["tokens"])
        print(f"resumed {state}", flush=True)
    log = open(os.path.join(a.run, "log.jsonl"), "a")
    heldout = [json.loads(l) for l in open(os.path.join(a.data, "heldout-qa.jsonl"))]
    eval_rng = random.Random(5)
    eval_rows = eval_rng.sample(heldout, min(cfg.get("eval_rows", 60), len(heldout)))
    wsrc = WindowSource(data, data.train, cfg.get("rank_layout", False))
    wsrc.x = ecfg.pooling_factor
    wrows = (window_rows(data, cfg.get("window_eval_rows", 0), T, rank_layout=cfg.get("rank_layout", False))
             if cfg.get("window_eval_rows", 0) else [])
    t_start = time.time()

    while state["stage"] < len(stages):
        st = stages[state["stage"]]
        name, steps = st["name"], st["steps"]
        arc = name.startswith("arc")
        if arc and state["step"] == 0 and not st.get("continue_encoder", False) and name == "arc":
            enc.init_from_decoder(dec)
            with torch.no_grad():
                for b in enc.bridges:  # start as the identity map
                    b.layer1.weight.zero_()
                    b.layer2.weight.zero_()
                    b.layer1.weight[: ecfg.dim].copy_(torch.eye(ecfg.dim))
                    b.layer2.weight[:, : ecfg.dim].copy_(torch.eye(ecfg.dim))
                nl = data.enc("\n")[0]
                enc.cont_tok.copy_(dec.tok_embeddings.weight[nl].expand_as(enc.cont_tok))
                enc.rec_tok.copy_(dec.tok_embeddings.weight[bpe.BOS].expand_as(enc.rec_tok))
        # arc stages train the encoder with the decoder frozen (as in the paper) unless the stage
        # sets "decoder_lr_mult" > 0: then the decoder trains too, at that fraction of the rate
        dec_mult = st.get("decoder_lr_mult", 0.0) if arc else 1.0
        groups = [{"params": list(enc.parameters()), "lr_mult": 1.0}] if arc else []
        if dec_mult > 0:
            groups.append({"params": list(dec.parameters()), "lr_mult": dec_mult})
        params = [p for g in groups for p in g["params"]]
        for p in dec.parameters():
            p.requires_grad_(dec_mult > 0)
        opt = torch.optim.AdamW(groups, lr=st["lr"], betas=(0.9, 0.95), weight_decay=0.1)
        if os.path.exists(ck) and blob is not None and blob.get("opt_stage") == state["stage"] and state["step"] > 0:
            opt.load_state_dict(blob["opt"])
        blob = None
        print(f"stage {name}: steps {state['step']}..{steps}", flush=True)
        t_stage, tok_window = time.time(), 0
        # a stage ends after `steps` steps or `minutes` of training, whichever comes first;
        # the learning-rate schedule follows whichever is further along
        budget_s = st.get("minutes", 0) * 60

        def progress() -> float:
            return max(state["step"] / steps, state.get("stage_seconds", 0.0) / budget_s if budget_s else 0.0)

        t_last = time.time()
        while progress() < 1.0:
            step = state["step"]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, progress(), st["lr"], st.get("warmup", 100)) * g.get("lr_mult", 1.0)
            B = st["batch"]
            if not arc:
                seqs = []
                for _ in range(B):
                    u = data.rng.random()
                    nq = st.get("questions_per_context", 1)
                    if u < st["mix"].get("repeat", 0):
                        n_run = data.rng.randint(6, 40)
                        ex = data.repeat_example(n_run, max(2, min(6, st.get("lm_len", 256) // (n_run + 1))))
                    elif (u := u - st["mix"].get("repeat", 0)) < st["mix"].get("synth_small", 0):
                        ex = qa_sequence(data, *data.synth_example(True, nq), T)
                    elif u < st["mix"].get("synth_small", 0) + st["mix"].get("synth", 0):
                        ex = qa_sequence(data, *data.synth_example(False, nq), T)
                    elif u < st["mix"].get("synth_small", 0) + st["mix"].get("synth", 0) + st["mix"].get("qa", 0):
                        ex = qa_sequence(data, *data.real_example(), T)
                    else:
                        w = data.lm_window(st.get("lm_len", 256))
                        ex = (w, [1] * len(w))
                    if ex is not None:
                        seqs.append(ex)
                ids, mask = pad_batch(seqs)
                loss = lm_loss(dec, ids, mask)
                ntok = int(ids.numel())
            else:
                items = []
                mx = st["mix"]
                for _ in range(B):
                    u = data.rng.random()
                    win = None
                    for form in ("arc", "mixed", "full"):
                        w = mx.get("win_" + form, 0)
                        if u < w:
                            win = form
                            break
                        u -= w
                    if win is not None:
                        lo, hi = st.get("window_positions", [300, 450])
                        it = None
                        while it is None:
                            it = wsrc.item(data.rng, T, win, data.rng.randint(lo, hi),
                                           text_budget=data.rng.choice(st.get("text_budgets", [0, 64, 128, 160, 192, 256])),
                                           p_answer_text=st.get("p_answer_text", 0.8),
                                           n_questions=st.get("window_questions", {}).get(win, 2),
                                           hard=st.get("hard_distractors", 0) > 0 and data.rng.random() < st["hard_distractors"])
                        items.append(it)
                    elif data.rng.random() < mx.get("qa", 0) / max(1e-9, 1 - sum(mx.get("win_" + f, 0) for f in ("arc", "mixed", "full"))):
                        src = (data.synth_example(False, st.get("questions_per_context", 1))
                               if data.rng.random() < st["mix"].get("qa_synth", 0.3) else data.real_example())
                        items.append(arc_qa_item(data, *src))
                    else:
                        items.append(arc_pretrain_item(data, mx.get("rec", 0.2)))
                loss = arc_forward(dec, enc, items, per_item=st.get("per_item_loss", False))
                kd = st.get("distill")
                if kd and dec_mult > 0:
                    if teacher is None:
                        raise SystemExit(f"stage {name} has \"distill\": pass --teacher WEIGHTS")
                    # text-only sequences: code windows and all-text window items with questions
                    kseqs = []
                    lo, hi = st.get("window_positions", [300, 450])
                    while len(kseqs) < kd.get("items", 3):
                        if data.rng.random() < kd.get("p_lm", 0.5):
                            kseqs.append(data.lm_window(kd.get("lm_len", 384)))
                            continue
                        it = wsrc.item(data.rng, T, "full", data.rng.randint(lo, hi),
                                       n_questions=st.get("window_questions", {}).get("full", 2))
                        if it is not None:
                            kseqs.append(text_sequence(it)[:T])
                    loss = loss + kd.get("weight", 1.0) * kd_loss(dec, teacher, kseqs)
                    ntok_kd = sum(len(x) for x in kseqs)
                else:
                    ntok_kd = 0
                ntok = sum(len(ids) for it in items for _, ids in item_segments(it)) + sum(len(it["after"]) for it in items) + ntok_kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            state["step"] += 1
            state["tokens"] += ntok
            now = time.time()
            state["stage_seconds"] = state.get("stage_seconds", 0.0) + (now - t_last)
            t_last = now
            tok_window += ntok
            if state["step"] % 25 == 0:
                el = time.time() - t_stage
                state["seconds"] += el
                rec = {"stage": name, "step": state["step"], "loss": round(float(loss), 4),
                       "tok_s": round(tok_window / max(el, 1e-6)), "seconds": round(state["seconds"]),
                       "tokens": state["tokens"]}
                print(json.dumps(rec), flush=True)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                t_stage, tok_window = time.time(), 0
            done_stage = progress() >= 1.0
            timeout = a.max_minutes and time.time() - t_start > a.max_minutes * 60
            if state["step"] % cfg.get("eval_every", 500) == 0 or done_stage or timeout:
                dec.eval()
                enc.eval()
                modes = ["full", "arc"] if arc else ["full"]
                ev = {"stage": name, "step": state["step"], "seconds": round(state["seconds"]),
                      "heldout": evaluate(data, dec, enc, eval_rows[: cfg.get("eval_rows_quick", 45)], modes, T),
                      "synth_small": evaluate(data, dec, enc, synth_rows(data, 30, True, 9), modes, T)["full" if not arc else "arc"],
                      "continuation_nll": continuation_nll(data, dec, enc if arc else None)}
                if arc and cfg.get("window_eval_rows", 0):
                    ev["window"] = window_eval(data, dec, enc, wrows, T)
                print("EVAL " + json.dumps(ev), flush=True)
                log.write(json.dumps({"eval": ev}) + "\n")
                log.flush()
                dec.train()
                enc.train()
                t_last = time.time()  # evaluation time does not count against the stage
            if state["step"] % cfg.get("ckpt_every", 250) == 0 or done_stage or timeout:
                if done_stage:
                    state["stage"] += 1
                    state["step"] = 0
                    state["stage_seconds"] = 0.0
                tmp = ck + ".tmp"
                torch.save({"dec": dec.state_dict(), "enc": enc.state_dict(), "state": state,
                            "opt": opt.state_dict(), "opt_stage": state["stage"], "config": cfg}, tmp)
                os.replace(tmp, ck)
                torch.save(dec.state_dict(), os.path.join(a.run, f"dec-{name}.pt")) if done_stage else None
            if timeout:
                save_final(a.run, dec, enc, state, cfg)
                print("time limit reached; checkpoint written", flush=True)
                return
            if done_stage:
                break
        if a.stop_after and name == a.stop_after:
            print(f"stopped after stage {name}", flush=True)
            return
    save_final(a.run, dec, enc, state, cfg)
    print("training complete", flush=True)


if __name__ == "__main__":
    main()
