"""Writes DATA.md, MODEL.md and loss.svg for the default model from its training log and data.

    /usr/bin/python3 tools/model_card.py --model models/arc-tiny-code --data tools/.data \
        [--eval-json FILE ...]   # results of `arc-context eval --json` per mode

Every figure in MODEL.md comes from a file: the training log (train-log.jsonl), the package
manifest, and the eval JSON files given on the command line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from svgplot import line_chart  # noqa: E402


def data_md(data_dir: str) -> str:
    import torch

    blob = torch.load(os.path.join(data_dir, "corpus.pt"))
    lines = ["# Training data of arc-tiny-code", "",
             "All sources are permissively licensed code available offline on the build machine.",
             "Files are split into training and held-out sets **by package** (Python top-level module or",
             "npm package; a package is held out when sha256(name) % 10 == 0), so no file and no package is",
             "in both. Reproduce with `/usr/bin/python3 tools/prepare_data.py` (see tools/README.md).", ""]
    for split in ("train", "test"):
        docs = blob[split]
        by_src = defaultdict(lambda: [0, 0, 0, set()])
        for d in docs:
            src = "Python 3.11 standard library" if d["package"].startswith("py:") else "npm packages (node_modules)"
            e = by_src[(src, d["license"])]
            e[0] += 1
            e[1] += sum(len(c["ids"]) for c in d["chunks"])
            e[2] += sum(len(c["qa"]) for c in d["chunks"])
            e[3].add(d["package"])
        lines += [f"## {'Training' if split == 'train' else 'Held-out'} split", "",
                  "| source | license | packages | files | tokens | QA items |", "|---|---|---|---|---|---|"]
        for (src, lic), (files, toks, qa, pk) in sorted(by_src.items()):
            lines.append(f"| {src} | {lic} | {len(pk)} | {files} | {toks:,} | {qa:,} |")
        lines.append("")
        if split == "test":
            pk = sorted({d["package"] for d in docs})
            lines += ["Held-out packages: " + ", ".join(f"`{p}`" for p in pk), ""]
    npm = sorted({d["package"][4:] for d in blob["train"] + blob["test"] if d["package"].startswith("npm:")})
    lines += ["## npm packages used", "", ", ".join(f"`{p}`" for p in npm), "",
              "Only packages whose package.json declares MIT, ISC, BSD-2/3-Clause, 0BSD or Apache-2.0 are read;",
              "minified files, files over 200 KB, test folders and large .d.ts files are skipped.", "",
              "## Questions", "",
              "Exactly three wordings, extracted from the code itself (tools/corpus.py):", "",
              "- \"Which file defines `NAME`?\" -> the path in the chunk header",
              "- \"What are the parameters of `NAME`?\" -> the text between the definition's parentheses, whitespace collapsed",
              "- \"What is the value of `NAME`?\" -> the literal right-hand side of a top-level constant", "",
              "Training questions rename the asked identifier everywhere in the context (and the answer file's",
              "path) to a random identifier built from real word pieces, so answers must be read from the",
              "context, not remembered. Held-out questions are not renamed.", ""]
    return "\n".join(lines)


def context_lengths(model_dir: str, rows: list) -> dict:
    """Held-out row id -> tokens of its rendered context files (the package's own tokenizer)."""
    tok_path = os.path.join(model_dir, "tokenizer.json")
    if not rows or not os.path.exists(tok_path):
        return {}
    import bpe
    import corpus as C
    tok = bpe.Tokenizer.load(tok_path)
    out = {}
    for row in rows:
        out[row["id"]] = sum(len(tok.encode(C.HEADER.format(path=f["path"]) + f["text"])) for f in row["files"])
    return out


def decoding_section(results: list, free: list) -> list:
    """Extractive against free decoding on the whole-package set, per mode (the same rows and selection)."""
    by_mode = {r["mode"]: r for r in results}
    out = ["Decoding (`--decoding`): the package answers extractively (`prompt.extractive`: an answer is a span of the",
           "code the decoder read, question included; a token that would leave it is passed over for the next most likely",
           "one). The same rows decoded freely:", "",
           "| mode | extractive | free | file (extractive / free) | params | value |", "|---|---|---|---|---|---|"]
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    for f in free:
        e = by_mode.get(f["mode"])
        if e is None:
            continue
        kinds = [f"{pct(e['byKind'].get(k, {}).get('exactMatch'))} / {pct(f['byKind'].get(k, {}).get('exactMatch'))}"
                 for k in ("file", "params", "value")]
        out.append(f"| {f['mode']} | {pct(e['exactMatch'])} | {pct(f['exactMatch'])} | " + " | ".join(kinds) + " |")
    return out + ["", "Command: the same `eval` with `--decoding free`.", ""]


def repo_section(results: list, sweep: list) -> list:
    """MODEL.md's table for the whole-package held-out set (heldout-repos.jsonl)."""
    def pct(x) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    def mean(rows, key) -> float:
        v = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        return sum(v) / len(v) if v else 0.0

    out = ["## Evaluation on whole packages (held-out, `heldout-repos.jsonl`)", "",
           "Each question's context is a whole package folder from a package never used in training, several",
           "times the 512-position window; `arc-context eval` asks it exactly like `ask --root FOLDER` (scan, chunk,",
           "selection, compression). \"answer chunk\" says how often the chunk that defines the asked name reached",
           "the decoder as text or compressed. Source tokens: tokens of the chunks the decoder read, in any form.", "",
           "| mode | kind | n | exact match | answer chunk as text | compressed | absent | mean source tokens | mean positions |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        groups = [(k, g) for k, g in sorted(r.get("byKind", {}).items())] + [("all", r)]
        for kind, g in groups:
            rows = [x for x in r["rows"] if kind == "all" or x.get("kind") == kind]
            ac = g.get("answerChunk") or {}
            out.append(f"| {r['mode']} | {kind} | {g['n']} | {pct(g['exactMatch'])} | {pct(ac.get('text'))} | "
                       f"{pct(ac.get('compressed'))} | {pct(ac.get('absent'))} | {mean(rows, 'sourceTokens'):.0f} | "
                       f"{mean(rows, 'contextPositions'):.0f} |")
    out += ["", "Command: `node dist/cli.js eval --model models/arc-tiny-code --data models/arc-tiny-code/heldout-repos.jsonl "
            "--mode MODE --json --threads 1 --cache DIR` (tools/finalize_default.sh).", ""]
    if sweep:
        out += ["Mixed-mode text budget (tokens read as text; the best-ranked chunk goes in as text even when it alone is",
                "larger), measured on the development set (`tools/.data/dev-repos.jsonl`: `tools/make_repo_heldout.py --dev`",
                "builds it the same way from TRAINING packages, so choices are made there and the held-out set above stays a",
                "test); the package's `prompt.mixedTextBudget` is the best exact match among the budgets that read at least",
                "twice full mode's source tokens (full mode on the same development set):", "",
                "| text budget | exact match | mean source tokens | mean text tokens | answer chunk as text |", "|---|---|---|---|---|"]
        for r in sorted(sweep, key=lambda r: r.get("textBudget") or 0):
            out.append(f"| {r.get('textBudget')} | {pct(r['exactMatch'])} | {mean(r['rows'], 'sourceTokens'):.0f} | "
                       f"{mean(r['rows'], 'textTokens'):.0f} | {pct((r.get('answerChunk') or {}).get('text'))} |")
        out.append("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/arc-tiny-code")
    ap.add_argument("--data", default="tools/.data")
    ap.add_argument("--eval-json", nargs="*", default=[])
    ap.add_argument("--repo-eval-json", nargs="*", default=[],
                    help="results of `arc-context eval --json` on heldout-repos.jsonl (whole package folders), per mode")
    ap.add_argument("--sweep-json", nargs="*", default=[],
                    help="mixed-mode results on the development set (dev-repos.jsonl) at several --text-budget values")
    ap.add_argument("--free-repo-eval-json", nargs="*", default=[],
                    help="whole-package eval --json files decoded with --decoding free (an ablation table beside the package's decoding)")
    ap.add_argument("--notes", default=None, help="a Markdown file of run notes (what helped, what did not) for MODEL.md")
    ap.add_argument("--data-md", action="store_true", help="also (re)write DATA.md from the corpus")
    a = ap.parse_args()
    if a.data_md:
        with open(os.path.join(a.model, "DATA.md"), "w") as f:
            f.write(data_md(a.data))
    log = [json.loads(l) for l in open(os.path.join(a.model, "train-log.jsonl"))]
    # a resumed run repeats the steps after its checkpoint: keep the run that continued
    steps, evals = [], []
    for r in log:
        # (a continued run, train.py --init-from, has its own run number and restarts step counts)
        if "loss" in r:
            steps = [q for q in steps if not (q.get("run", 1) == r.get("run", 1) and q["stage"] == r["stage"]
                                              and q["step"] >= r["step"])] + [r]
        elif "eval" in r:
            e = r["eval"]
            evals = [q for q in evals if not (q.get("run", 1) == e.get("run", 1) and q["stage"] == e["stage"]
                                              and q["step"] >= e["step"])] + [e]
    def label(r: dict) -> str:
        return r["stage"] if r.get("run", 1) == 1 else f"{r['stage']} (run {r['run']})"

    series = defaultdict(list)
    for r in steps:
        series[label(r)].append((r["seconds"] / 60, r["loss"]))
    with open(os.path.join(a.model, "loss.svg"), "w") as f:
        f.write(line_chart(series, "arc-tiny-code training loss by stage", "training minutes (1 CPU thread)", "loss"))
    em = defaultdict(list)
    for e in evals:
        for mode, res in e["heldout"].items():
            em[f"held-out {mode}"].append((e["seconds"] / 60, res["all"]))
        for mode, res in e.get("window", {}).items():
            em[f"window {mode}"].append((e["seconds"] / 60, res["all"]))
        em[f"synthetic ({'arc' if e['stage'].startswith('arc') else 'full'})"].append((e["seconds"] / 60, e["synth_small"]["all"]))
    with open(os.path.join(a.model, "em.svg"), "w") as f:
        f.write(line_chart(em, "exact match during training (quick eval subsets)", "training minutes", "exact match"))
    man = json.load(open(os.path.join(a.model, "arc-model.json")))
    d, e = man["decoder"], man["encoder"]
    last = steps[-1] if steps else {}
    out = ["# arc-tiny-code", "", man["description"], "",
           "## Architecture", "",
           f"- Decoder: Llama-style (RMSNorm, RoPE theta {json.load(open(os.path.join(a.model, 'weights.config.json')))['decoder']['rope_theta']:g}, "
           f"GQA, SwiGLU, tied embeddings), width {d['hiddenSize']}, {d['numLayers']} layers, {d['numHeads']} heads "
           f"({d['numKvHeads']} KV heads, head size {d['headDim']}), vocabulary {d['vocabSize']}, window {d['contextLength']} positions.",
           f"- ARC encoder: bidirectional, {json.load(open(os.path.join(a.model, 'weights.config.json')))['encoder']['n_layers']} layers initialised "
           f"from the decoder's first layers, mean-pooled queries in the last layer, pooling factor {e['poolingFactor']}, "
           f"bias-free two-layer projector, learned <Rec>/<Cont>; chunks of at most {e['maxChunkTokens']} tokens.",
           "- Tokenizer: byte-level BPE trained here (tools/bpe.py); identifiers, numbers, punctuation runs and",
           "  whitespace runs are pre-split so a name is tokenized the same wherever it stands.", "",
           "## Training", "",
           f"{man.get('training', {}).get('seconds', 0) / 60:.0f} minutes of training on one CPU thread (2-core shared machine), "
           f"{man.get('training', {}).get('tokens', 0):,} tokens seen, in these runs:", ""]
    for i, run in enumerate(man.get("training", {}).get("runs", []), 1):
        start = f" from the previous package (`--init-from ... --start-stage {run['stages'][0]}`)" if run.get("initFrom") else ""
        out.append(f"{i}. `{run['config']}`{start}: stages {', '.join(run['stages'])}; "
                   f"{run['seconds'] / 60:.0f} minutes, {run['tokens']:,} tokens.")
    out += ["",
           "![loss](loss.svg)", "", "![exact match](em.svg)", ""]
    if evals:
        nll = [ev for ev in evals if "continuation_nll" in ev]
        if nll:
            out += ["Held-out code continuation (64 tokens after a 192-token prefix; mean NLL per token, lower is better)",
                    "with no context, with the prefix as text (full), and with the prefix compressed x4 (arc):", "",
                    "| stage | step | none | full | arc |", "|---|---|---|---|---|"]
            for ev in nll:
                c = ev["continuation_nll"]
                out.append(f"| {label(ev)} | {ev['step']} | {c['none']:.3f} | {c['full']:.3f} | {c.get('arc', float('nan')):.3f} |")
            out.append("")
        out += ["Quick evaluations logged during training (subsets: 45 held-out rows, 30 synthetic rows):", "",
                "| stage | step | minutes | mode | file | params | value | all | synthetic |", "|---|---|---|---|---|---|---|---|---|"]
        for ev in evals:
            for mode, r in ev["heldout"].items():
                out.append(f"| {label(ev)} | {ev['step']} | {ev['seconds'] / 60:.0f} | {mode} | {r.get('file', 0):.2f} | "
                           f"{r.get('params', 0):.2f} | {r.get('value', 0):.2f} | {r['all']:.2f} | {ev['synth_small']['all']:.2f} |")
        out.append("")
        wins = [ev for ev in evals if "window" in ev]
        if wins:
            out += ["Quick evaluations at the shape of use (60 held-out rows; the asked chunk among others of its package",
                    "filling ~440 compressed positions; arc: all compressed, mixed: the asked chunk as text and the rest",
                    "compressed, full: the asked chunk and as many others as fit as text):", "",
                    "| stage | step | minutes | full | mixed | arc |", "|---|---|---|---|---|---|"]
            for ev in wins:
                w = ev["window"]
                out.append(f"| {label(ev)} | {ev['step']} | {ev['seconds'] / 60:.0f} | {w['full']['all']:.2f} | "
                           f"{w['mixed']['all']:.2f} | {w['arc']['all']:.2f} |")
            out.append("")
    if a.eval_json:
        # one result file per mode: (name shown, result)
        results = []
        for path in a.eval_json:
            r = json.load(open(path))
            results.append((r.get("mode", os.path.basename(path)), r))
        # the measured figures travel with the package: the e2e suite reads them to decide
        # whether the bundled model's answers must be right
        evaluation = {}
        for _, r in results:
            evaluation[r["mode"]] = {"n": r["n"], "exactMatch": round(r["exactMatch"], 4),
                                     "data": "heldout-qa.jsonl", "command": "arc-context eval"}
        man["evaluation"] = evaluation
        if a.repo_eval_json:
            man["evaluationRepos"] = {}
            for path in a.repo_eval_json:
                r = json.load(open(path))
                man["evaluationRepos"][r["mode"]] = {
                    "n": r["n"], "exactMatch": round(r["exactMatch"], 4),
                    "meanSourceTokens": round(r.get("meanSourceTokens", 0)),
                    "byKind": {k: round(g["exactMatch"], 4) for k, g in sorted(r.get("byKind", {}).items())},
                    "data": "heldout-repos.jsonl", "command": "arc-context eval"}
        with open(os.path.join(a.model, "arc-model.json"), "w") as f:
            json.dump(man, f, indent=2)
            f.write("\n")
        qa_path = os.path.join(a.model, "heldout-qa.jsonl")
        qa_rows = [json.loads(line) for line in open(qa_path)] if os.path.exists(qa_path) else []
        gold = {r["id"]: r["answers"][0] for r in qa_rows}
        selfs = [i for i, g in gold.items() if i.startswith("params") and g.strip() == "self"]
        n_params = sum(1 for i in gold if i.startswith("params"))
        out += ["## Evaluation (held-out, through `arc-context eval`)", "",
                f"Trivial baseline: {len(selfs)} of {n_params} parameter questions have the answer `self`; "
                "the column 'params w/o self' leaves those rows out.", "",
                "| mode | n | exact match | file | params | params w/o self | value | median TTFT ms |",
                "|---|---|---|---|---|---|---|---|"]
        for mode, r in results:
            kinds = defaultdict(list)
            for row in r["rows"]:
                kinds[row["id"].split("-")[0]].append(row["correct"])
            tt = sorted(x["ttftMs"] for x in r["rows"])
            med = tt[len(tt) // 2] if tt else 0
            f = lambda k: f"{sum(kinds[k]) / len(kinds[k]):.3f}" if kinds[k] else "-"  # noqa: E731
            ns = [row["correct"] for row in r["rows"] if row["id"].startswith("params") and row["id"] not in selfs]
            nself = f"{sum(ns) / len(ns):.3f}" if ns else "-"
            out.append(f"| {mode} | {r['n']} | {r['exactMatch']:.3f} | {f('file')} | "
                       f"{f('params')} | {nself} | {f('value')} | {med:.0f} |")
        # exact match by the context's length in tokens (the rendered files, as the decoder reads them in full mode)
        lengths = context_lengths(a.model, qa_rows)
        if lengths:
            edges = [0, 256, 384, 448, 10 ** 9]
            names = ["< 256", "256-383", "384-447", ">= 448"]
            bucket = {i: next(b for b in range(len(names)) if edges[b] <= n < edges[b + 1]) for i, n in lengths.items()}
            counts = Counter(bucket.values())
            out += ["", "Exact match by context length (source tokens of the question's files; arc reads a quarter as many vectors):", "",
                    "| mode | " + " | ".join(f"{nm} (n={counts.get(b, 0)})" for b, nm in enumerate(names)) + " |",
                    "|---|" + "---|" * len(names)]
            for mode, r in results:
                per = defaultdict(list)
                for row in r["rows"]:
                    if row["id"] in bucket:
                        per[bucket[row["id"]]].append(row["correct"])
                cells = [f"{sum(per[b]) / len(per[b]):.3f}" if per[b] else "-" for b in range(len(names))]
                out.append(f"| {mode} | " + " | ".join(cells) + " |")
        out += ["", "Command: `node dist/cli.js eval --model models/arc-tiny-code --data models/arc-tiny-code/heldout-qa.jsonl "
                "--mode MODE --json --threads 1 --no-cache` (one file per mode; `tools/finalize_default.sh` runs arc and full "
                "side by side on the two cores, then none, so TTFT includes encoding every chunk and some contention).", ""]
    if a.repo_eval_json:
        out += repo_section([json.load(open(p)) for p in a.repo_eval_json], [json.load(open(p)) for p in a.sweep_json])
        if a.free_repo_eval_json:
            out += decoding_section([json.load(open(p)) for p in a.repo_eval_json], [json.load(open(p)) for p in a.free_repo_eval_json])
    if a.notes:
        out += ["## Run notes", "", open(a.notes).read().strip(), ""]
    with open(os.path.join(a.model, "MODEL.md"), "w") as f:
        f.write("\n".join(out))
    print("wrote", a.model)


if __name__ == "__main__":
    main()
