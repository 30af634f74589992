"""A decoder with a realistic shape and random weights, for speed measurements only.

`arc-context bench --model .cache/bench-models/realistic-103m` measures time to first token of
arc / mixed / full against context size on it: 16 layers, width 768, 12 query / 4 KV heads,
SwiGLU 2048, a 32,768-position window (about 103M parameters), plus a small x4 encoder whose
output width matches. The weights are random (seeded): answers are noise, timings are what a
trained model of this shape costs. Uses the one model definition (tools/model.py) and the
package exporter (tools/export.py); writes into a git-ignored folder.

    /usr/bin/python3 bench/make_realistic_decoder.py [--out .cache/bench-models/realistic-103m]
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import torch  # noqa: E402

import export  # noqa: E402
from model import ArcEncoder, Decoder, DecoderConfig, EncoderConfig  # noqa: E402

TOKENIZER = os.path.join(ROOT, "models", "arc-tiny-code", "tokenizer.json")
DEC = DecoderConfig(vocab_size=3072, dim=768, n_layers=16, n_heads=12, n_kv_heads=4, head_dim=64,
                    hidden_dim=2048, context_length=32768, rope_theta=500000.0)
ENC = EncoderConfig(vocab_size=3072, dim=256, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=64,
                    hidden_dim=768, pooling_factor=4, proj_hidden=1024, out_dim=768)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, ".cache", "bench-models", "realistic-103m"))
    args = ap.parse_args()
    torch.manual_seed(0)
    enc, dec = ArcEncoder(ENC), Decoder(DEC)
    with torch.no_grad():
        for mod in (enc, dec):
            for name, p in mod.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                else:
                    p.normal_(0.0, 0.02)
    params = sum(p.numel() for p in dec.parameters())
    with open(os.path.join(ROOT, "models", "arc-tiny-code", "arc-model.json")) as f:
        tiny = json.load(f)
    export.export_package(args.out, dec.eval(), enc.eval(), tokenizer_json_path=TOKENIZER, manifest_extra={
        "name": "realistic-103m-random",
        "description": f"Random weights, for speed only: a {params / 1e6:.0f}M-parameter decoder "
                       "(16 x 768, 12/4 heads, 32k window) and a small x4 encoder. Made by bench/make_realistic_decoder.py.",
        "license": "Apache-2.0",
        "encoder": {"maxChunkTokens": 256, "source": "random (bench/make_realistic_decoder.py)"},
        "prompt": tiny["prompt"],
        "documentFormat": tiny["documentFormat"],
    })
    print(json.dumps({"out": args.out, "decoderParameters": params}))


if __name__ == "__main__":
    main()
