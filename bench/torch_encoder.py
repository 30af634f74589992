"""Encoder throughput of the PyTorch reference (tools/model.py) on the chunks `arc-context bench`
ran through ONNX Runtime, plus this machine's fp32 matrix-multiply peak and the FLOPs the encoder
does per token, so both runtimes can be put against the hardware.

Usage (the bench writes the request and reads the response; run it by hand the same way):
    /usr/bin/python3 bench/torch_encoder.py REQUEST.json RESPONSE.json

REQUEST: {"model_dir": str, "threads": int, "reps": int, "chunks": [[token ids]...],
          "batches": [[chunk indices]...], "sgemm_n": int, "sgemm_reps": int,
          "reference": null | {"chunk": int, "embeddings": [floats, m x out_dim row-major]}}
RESPONSE: {"ok": true, ...figures...} or {"ok": false, "skipped": reason}.

Weights: `weights.safetensors` + `weights.config.json` in the package (tensor names encoder.*),
the same weights the package's encoder.onnx was exported from; packages without them (test
fixtures) run random weights of the encoder's shape, read from encoder.onnx, which is enough for
speed (the arithmetic does not depend on the values) but not for the parity check.

FLOPs count the matrix multiplications only (projections, attention scores and mixing, pooling,
feed-forward, projector); norms, RoPE, softmax and SiLU are left out. They are counted on each
chunk's real length, so padding inside a batch is work that earns nothing.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(REPO, "tools")


def fail(out_path: str, reason: str) -> None:
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"ok": False, "skipped": reason}, f)


def encoder_flops(cfg, length: int, group_count: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of one chunk of `length` tokens pooled into `group_count` rows."""
    d, L, m = cfg.dim, length, group_count
    q = cfg.n_heads * cfg.head_dim
    kv = cfg.n_kv_heads * cfg.head_dim
    f = cfg.hidden_dim
    # a full bidirectional layer: q/k/v, scores + mixing over L keys, output projection, SwiGLU
    layer = 2 * L * d * (q + 2 * kv) + 2 * 2 * L * L * q + 2 * L * q * d + 3 * 2 * L * d * f
    # the pooling layer: k/v on all L rows, mean pooling, then queries/FFN on the m pooled rows
    last = 2 * L * d * 2 * kv + 2 * m * L * d + 2 * m * d * q + 2 * 2 * m * L * q + 2 * m * q * d + 3 * 2 * m * d * f
    proj = 2 * m * (d * cfg.proj_hidden + cfg.proj_hidden * cfg.out_dim)
    return (cfg.n_layers - 1) * layer + last + proj


def onnx_shapes(path: str) -> Dict[str, List[int]]:
    import onnx

    model = onnx.load(path, load_external_data=False)
    return {t.name: list(t.dims) for t in model.graph.initializer}


def shape_config(model_dir: str, manifest: dict):
    """EncoderConfig of a package without a checkpoint, from encoder.onnx's weight shapes.

    The head split cannot be read from shapes; the decoder's head size is used when it divides
    the widths (it does not change the FLOPs, only how torch groups the same work)."""
    from model import EncoderConfig

    shapes = onnx_shapes(os.path.join(model_dir, manifest["encoder"]["file"]))

    def find(*needles: str) -> List[int]:
        for name, dims in shapes.items():
            if all(n in name for n in needles):
                return dims
        raise ValueError(f"encoder.onnx has no weight named like {needles}")

    vocab, dim = find("tok_embeddings")
    n_layers = sum(1 for n in shapes if n.endswith("attention_norm.weight"))
    q_dim = find("wq")[1] if find("wq")[0] == dim else find("wq")[0]
    kv_dim = find("wk")[1] if find("wk")[0] == dim else find("wk")[0]
    w1 = find("w1")
    hidden = w1[1] if w1[0] == dim else w1[0]
    l1, l2 = find("bridges.0.layer1"), find("bridges.0.layer2")
    dec = manifest.get("decoder") or {}
    head = dec.get("headDim") or 0
    if not head or q_dim % head or kv_dim % head:
        head = next(h for h in (64, 32, 16, 12, 8, 4, 2, 1) if q_dim % h == 0 and kv_dim % h == 0)
    return EncoderConfig(vocab_size=vocab, dim=dim, n_layers=n_layers, n_heads=q_dim // head,
                         n_kv_heads=kv_dim // head, head_dim=head, hidden_dim=hidden,
                         pooling_factor=manifest["encoder"]["poolingFactor"],
                         proj_hidden=l1[0], out_dim=l2[0], n_decoders=1)


def load_encoder(model_dir: str, manifest: dict):
    import torch
    from model import ArcEncoder, EncoderConfig
    import safetensors_io

    weights = os.path.join(model_dir, "weights.safetensors")
    config = os.path.join(model_dir, "weights.config.json")
    if os.path.exists(weights) and os.path.exists(config):
        with open(config, encoding="utf-8") as f:
            cfg = EncoderConfig(**json.load(f)["encoder"])
        enc = ArcEncoder(cfg)
        ckpt = safetensors_io.open_checkpoint(weights)
        state = {k[len("encoder."):]: ckpt.get(k) for k in ckpt.keys() if k.startswith("encoder.")}
        enc.load_state_dict(state)
        source = "weights.safetensors (the weights encoder.onnx was exported from)"
        real = True
    else:
        cfg = shape_config(model_dir, manifest)
        torch.manual_seed(0)
        enc = ArcEncoder(cfg)
        with torch.no_grad():
            for p in enc.parameters():
                p.normal_(0.0, 0.02)
        source = "random weights, shapes read from encoder.onnx (no weights.safetensors in the package)"
        real = False
    # torch's decoder index is the package's; a single-projector module holds it at 0
    return enc.eval(), cfg, source, real


def time_runs(fn, reps: int) -> List[float]:
    fn()  # warm-up: allocator and OpenBLAS buffers
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def sgemm(n: int, reps: int) -> dict:
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    samples = time_runs(lambda: torch.matmul(a, b), reps)
    flop = 2.0 * n ** 3
    return {"n": n, "reps": reps, "gflops_best": flop / min(samples) / 1e9,
            "gflops_median": flop / statistics.median(samples) / 1e9}


def main(argv: Sequence[str]) -> None:
    req_path, out_path = argv[1], argv[2]
    with open(req_path, encoding="utf-8") as f:
        req = json.load(f)
    threads = int(req["threads"])
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "no torch here"
        fail(out_path, f"import torch failed: {e}")
        return
    sys.path.insert(0, TOOLS)
    torch.set_num_threads(threads)
    with open(os.path.join(req["model_dir"], "arc-model.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    try:
        enc, cfg, source, real = load_encoder(req["model_dir"], manifest)
    except Exception as e:  # noqa: BLE001
        fail(out_path, f"could not build the torch encoder: {type(e).__name__}: {e}")
        return
    from model import group_sizes, pool_matrix

    chunks: List[List[int]] = req["chunks"]
    batches: List[List[int]] = req["batches"]
    reps = int(req["reps"])
    x = cfg.pooling_factor
    tokens = sum(len(c) for c in chunks)
    flops = sum(encoder_flops(cfg, len(c), len(group_sizes(len(c), x))) for c in chunks)

    def feeds(idx: Sequence[int]):
        lengths = [len(chunks[i]) for i in idx]
        L = max(lengths)
        ids = torch.zeros(len(idx), L, dtype=torch.long)
        mask = torch.zeros(len(idx), L, dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, : lengths[r]] = torch.tensor(chunks[i], dtype=torch.long)
            mask[r, : lengths[r]] = 1
        return ids, mask, pool_matrix(lengths, x, L)

    batched_feeds = [feeds(b) for b in batches]
    single_feeds = [feeds([i]) for i in range(len(chunks))]

    def run(all_feeds) -> None:
        with torch.no_grad():
            for ids, mask, pool in all_feeds:
                enc(ids, mask, pool, 0)

    result: Dict[str, object] = {
        "ok": True,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": blas_name(torch),
        "weights": source,
        "config": {k: getattr(cfg, k) for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "head_dim",
                                                  "hidden_dim", "pooling_factor", "proj_hidden", "out_dim", "vocab_size")},
        "chunks": len(chunks),
        "tokens": tokens,
        "flops": flops,
        "flopsPerToken": flops / max(1, tokens),
    }
    for name, all_feeds in (("batched", batched_feeds), ("single", single_feeds)):
        samples = time_runs(lambda: run(all_feeds), reps)
        med = statistics.median(samples)
        result[name] = {"calls": len(all_feeds), "secondsMedian": med, "samples": samples,
                        "tokensPerSecond": tokens / med, "gflops": flops / med / 1e9}

    parity: Optional[dict] = None
    ref = req.get("reference")
    if ref is not None and real:
        i = int(ref["chunk"])
        with torch.no_grad():
            ids, mask, pool = single_feeds[i]
            out = enc(ids, mask, pool, 0)[0].reshape(-1)
        onnx_out = torch.tensor(ref["embeddings"], dtype=torch.float32)
        if onnx_out.numel() == out.numel():
            parity = {"chunk": i, "maxAbsDiff": float((out - onnx_out).abs().max()),
                      "maxAbs": float(onnx_out.abs().max())}
        else:
            parity = {"chunk": i, "error": f"torch gave {out.numel()} floats, ONNX {onnx_out.numel()}"}
    result["parity"] = parity
    result["sgemm"] = sgemm(int(req["sgemm_n"]), int(req["sgemm_reps"]))
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f)


def blas_name(torch) -> str:
    """BLAS_INFO from torch's build configuration ("generic" on Debian: the system libblas,
    which update-alternatives may point at OpenBLAS)."""
    import re

    m = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    name = m.group(1) if m else "unknown"
    lib = "/usr/lib/x86_64-linux-gnu/libblas.so.3"
    if name == "generic" and os.path.exists(lib):
        name += f" ({os.path.realpath(lib)})"
    return name


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__ or "")
        sys.exit(2)
    main(sys.argv)
