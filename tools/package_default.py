"""Writes the bundled default model `models/arc-tiny-code` from a training run's checkpoint.

    /usr/bin/python3 tools/package_default.py --run runs/arc-tiny-code --out models/arc-tiny-code

Keeps the trained weights as weights.safetensors (+ weights.config.json) next to the ONNX
export so a later run can continue from them (tools/train.py --init-from), writes the
training log and the model card's figures.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus as C  # noqa: E402
import export  # noqa: E402
from model import ArcEncoder, Decoder, DecoderConfig, EncoderConfig  # noqa: E402

DESCRIPTION = ("A tiny code decoder and its ARC x4 encoder, trained on this project's machines from "
               "permissively licensed source code. It answers three kinds of lookup questions about the "
               "code in its context (which file defines X, the parameters of X, the value of X); it is "
               "not a general assistant.")


def build(run: str, data_dir: str):
    if os.path.exists(os.path.join(run, "ckpt.pt")):
        blob = torch.load(os.path.join(run, "ckpt.pt"), map_location="cpu")
    else:  # a GPU run's carried-back result (train.py save_final)
        meta = json.load(open(os.path.join(run, "final-state.json")))
        blob = {"config": meta["config"], "state": meta["state"],
                "dec": torch.load(os.path.join(run, "final-dec.pt")), "enc": torch.load(os.path.join(run, "final-enc.pt"))}
    cfg = blob["config"]
    vocab = len(json.load(open(os.path.join(data_dir, "tokenizer.json")))["model"]["vocab"])
    dcfg = DecoderConfig(vocab_size=vocab, **cfg["decoder"])
    ecfg = EncoderConfig(vocab_size=vocab, dim=dcfg.dim, n_heads=dcfg.n_heads, n_kv_heads=dcfg.n_kv_heads,
                         head_dim=dcfg.head_dim, hidden_dim=dcfg.hidden_dim, norm_eps=dcfg.norm_eps,
                         rope_theta=dcfg.rope_theta, rope_layout=dcfg.rope_layout, out_dim=dcfg.dim,
                         **cfg["encoder"])
    dec, enc = Decoder(dcfg), ArcEncoder(ecfg)
    dec.load_state_dict(blob["dec"])
    enc.load_state_dict(blob["enc"])
    return dec.eval(), enc.eval(), blob["state"], cfg


def read_log(path: str) -> list:
    return [json.loads(line) for line in open(path)]


def record(line: dict) -> dict:
    """A training-log line is a step record or {"eval": record}."""
    return line["eval"] if "eval" in line else line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/arc-tiny-code")
    ap.add_argument("--data", default="tools/.data")
    ap.add_argument("--out", default="models/arc-tiny-code")
    ap.add_argument("--config", default="tools/configs/arc-tiny-code.json", help="the config the run used (recorded)")
    ap.add_argument("--continues", default=None,
                    help="folder with the previous package's arc-model.json and train-log.jsonl when the run "
                         "started from its weights (train.py --init-from): training cost and log are cumulative")
    ap.add_argument("--text-budget", type=int, default=None,
                    help="prompt.mixedTextBudget: text tokens besides the best-ranked chunk in mixed mode (measured: "
                         "tools/finalize_default.sh sweeps it on the development set, tools/.data/dev-repos.jsonl)")
    ap.add_argument("--context-order", choices=("document", "rank"), default=None,
                    help="prompt.contextOrder: chunks in document order (absent) or best-ranked first")
    ap.add_argument("--quote-chunks", type=int, default=None,
                    help="prompt.quoteChunks: extractive answers quote at most this many chunks, the best-ranked")
    ap.add_argument("--extractive", action="store_true",
                    help="prompt.extractive: answers are spans of the context the decoder read (extractive decoding; "
                         "tools/finalize_default.sh measures it against free decoding)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    dec, enc, state, cfg = build(a.run, a.data)
    os.makedirs(a.out, exist_ok=True)
    extra = {
        "name": "arc-tiny-code",
        "description": DESCRIPTION,
        "license": "Apache-2.0 (weights trained here; training data licenses in DATA.md)",
        "encoder": {"maxChunkTokens": 256, "source": "trained here (tools/train.py)"},
        "prompt": {"questionTemplate": C.QUESTION_TEMPLATE, "stop": [C.ANSWER_END], "maxNewTokens": 48,
                   **({"mixedTextBudget": a.text_budget} if a.text_budget is not None else {}),
                   **({"extractive": True} if a.extractive else {}),
                   **({"contextOrder": a.context_order} if a.context_order else {}),
                   **({"quoteChunks": a.quote_chunks} if a.quote_chunks is not None else {})},
        "documentFormat": {"header": C.HEADER, **({"compressedHeader": True} if cfg.get("compressed_headers") else {})},
        "training": {"stage": state["stage"], "stages": [s["name"] for s in cfg["stages"]],
                     "tokens": state["tokens"], "seconds": round(state["seconds"])},
    }
    run_log = read_log(os.path.join(a.run, "log.jsonl"))
    # the stages this run trained (a continued run skips the first ones)
    trained = list(dict.fromkeys(record(r)["stage"] for r in run_log if "stage" in record(r)))
    this_run = {"config": a.config, "stages": trained, "finishedStages": state["stage"],
                "tokens": state["tokens"], "seconds": round(state["seconds"])}
    prev_runs: list = []
    prev_log: list = []
    if a.continues:
        prev = json.load(open(os.path.join(a.continues, "arc-model.json")))["training"]
        prev_runs = prev.get("runs") or [{"config": "tools/configs/arc-tiny-code.json", "stages": prev["stages"],
                                          "finishedStages": prev["stage"], "tokens": prev["tokens"], "seconds": prev["seconds"]}]
        prev_log = read_log(os.path.join(a.continues, "train-log.jsonl"))
        for r in prev_log:
            record(r).setdefault("run", 1)
        this_run["initFrom"] = "the previous package's weights.safetensors"
    runs = prev_runs + [this_run]
    if prev_runs:
        extra["training"] = {"runs": runs, "stages": [s for r in runs for s in r["stages"]],
                             "stage": state["stage"], "tokens": sum(r["tokens"] for r in runs),
                             "seconds": sum(r["seconds"] for r in runs)}
    else:
        extra["training"]["runs"] = runs
    with torch.no_grad():
        m = export.export_package(a.out, dec, enc, 0, os.path.join(a.data, "tokenizer.json"), extra)
    export.save_checkpoint(os.path.join(a.out, "weights.safetensors"), os.path.join(a.out, "weights.config.json"),
                           enc, dec, m)
    # one cumulative log: this run's minutes and tokens continue from the previous runs'
    base_s, base_t = sum(r["seconds"] for r in prev_runs), sum(r["tokens"] for r in prev_runs)
    with open(os.path.join(a.out, "train-log.jsonl"), "w") as out:
        for r in prev_log:
            out.write(json.dumps(r) + "\n")
        for r in run_log:
            rec = record(r)
            rec["run"] = len(runs)
            if "seconds" in rec:
                rec["seconds"] += base_s
            if "tokens" in rec:
                rec["tokens"] += base_t
            out.write(json.dumps(r) + "\n")
    shutil.copyfile(os.path.join(a.data, "heldout-qa.jsonl"), os.path.join(a.out, "heldout-qa.jsonl"))
    total = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out) if os.path.isfile(os.path.join(a.out, f)))
    print(json.dumps({"out": a.out, "bytes": total, "state": state}))


if __name__ == "__main__":
    main()
