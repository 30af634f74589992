"""Convert a released Kyutai ARC-Encoder checkpoint into the encoder part of an arc-model/1 package.

    /usr/bin/python3 tools/convert_kyutai.py --checkpoint DIR --decoder-index I --out DIR \
        [--tokenizer tokenizer.json] [--dtype fp32|fp16] [--max-chunk-tokens 1024]

DIR holds `config.json` (the constructor arguments: model_args, embedder_args, bridge_args,
empty_init) and `model.safetensors` (names `embedder.*`, `bridge_module.*`). Writes
`encoder.onnx` (+ `encoder.onnx.data` when large) and `arc-model.json` with `"decoder": null`;
add a decoder with tools/import_decoder.py.

What the conversion has to get right (see ../shared/fixtures/kyutai-tiny/README.md):
- keep n_layers - n_truncated_layers layers; pooling factor x from compress_rates [-x];
- norm_eps may be a string ("1e-05"); rope theta from model_args; Meta RoPE layout, no
  Llama 3 rope scaling (Kyutai's code ignores it);
- multi checkpoints index the projector by decoder (`bridge_module.{d}.layer1/2`), single
  ones do not (`bridge_module.layer1/2`); `<Rec>`/`<Cont>` are `embedder.{rec,cont}_tok.{d}`.
Weights are streamed one tensor at a time (tools/export.py), so a 12 GB fp32 checkpoint needs
about one largest tensor of RAM beyond the exporter's own few hundred MB.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from typing import Optional, Sequence, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import ArcEncoder, EncoderConfig  # noqa: E402
import export  # noqa: E402
import safetensors_io  # noqa: E402


class ConversionError(ValueError):
    pass


def _float(v) -> float:
    return float(v)  # accepts the string "1e-05" the released configs carry


def read_config(ckpt_dir: str, ckpt: Optional[safetensors_io.Checkpoint] = None) -> Tuple[EncoderConfig, dict]:
    """EncoderConfig from a Kyutai config.json; also returns layout facts for the weight mapping."""
    with open(os.path.join(ckpt_dir, "config.json"), encoding="utf-8") as f:
        raw = json.load(f)
    try:
        ma, ea, ba = raw["model_args"], raw["embedder_args"], raw["bridge_args"]
    except KeyError as e:
        raise ConversionError(f"{ckpt_dir}/config.json lacks {e}: not a Kyutai ARC-Encoder checkpoint") from None
    ckpt = ckpt or safetensors_io.open_checkpoint(ckpt_dir)

    rates = ea.get("compress_rates") or []
    if len(rates) != 1 or int(rates[0]) >= 0:
        raise ConversionError(f"compress_rates {rates}: only one negative rate [-x] (pooling in the last layer) "
                              "is supported")
    pool = ea.get("pooling_module") or {}
    if pool.get("pool_type") != "mean_pooled_queries" or pool.get("where", "before") != "before":
        raise ConversionError(f"pooling_module {pool}: only mean_pooled_queries/before is supported")
    if ea.get("causal_embedder"):
        raise ConversionError("causal_embedder true: the released encoders are bidirectional; not supported")
    if int(ea.get("memory_tokens") or 0) != 0:
        raise ConversionError("memory_tokens > 0 is not supported")
    if ma.get("sliding_window") or ma.get("_sliding_window"):
        raise ConversionError("sliding-window attention is not supported")

    n_layers = int(ma["n_layers"]) - int(ea.get("n_truncated_layers") or 0)
    present = {int(m.group(1)) for k in ckpt.keys() for m in [re.match(r"embedder\.layers\.(\d+)\.", k)] if m}
    missing = [i for i in range(n_layers) if i not in present]
    if missing:
        raise ConversionError(f"config keeps {n_layers} layers but the weights lack layers {missing}")

    btype = ba.get("bridge_type", "mlp")
    if btype == "multi_module":
        layout = "multi"
        n_dec = len({int(m.group(1)) for k in ckpt.keys() for m in [re.match(r"bridge_module\.(\d+)\.layer1\.", k)] if m})
    elif btype == "mlp":
        layout = "single"
        n_dec = 1
    else:
        raise ConversionError(f"bridge_type {btype!r} is not supported (expected 'mlp' or 'multi_module')")
    if n_dec < 1:
        raise ConversionError("no projector (bridge_module.*.layer1.weight) found in the weights")
    if "bridge_module.layer1.weight" in ckpt and layout == "multi":
        raise ConversionError("bridge_type multi_module but un-indexed bridge_module.layer1.weight")

    dim, n_heads = int(ma["dim"]), int(ma["n_heads"])
    cfg = EncoderConfig(
        vocab_size=int(ma["vocab_size"]), dim=dim, n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=int(ma.get("n_kv_heads") or n_heads), head_dim=int(ma.get("head_dim") or dim // n_heads),
        hidden_dim=int(ma["hidden_dim"]), norm_eps=_float(ma.get("norm_eps", 1e-5)),
        rope_theta=_float(ma.get("rope_theta") or 10000.0), rope_layout="meta",
        pooling_factor=-int(rates[0]), proj_hidden=int(ba["hidden_dim"]), out_dim=int(ba["out_dim"]),
        n_decoders=n_dec)
    if int(ba.get("in_dim", dim)) != dim:
        raise ConversionError(f"bridge in_dim {ba.get('in_dim')} != model dim {dim}")
    if ma.get("non_parametric_norm"):
        raise ConversionError("non_parametric_norm is not supported")
    return cfg, {"layout": layout, "has_rec": any(k.startswith("embedder.rec_tok.") for k in ckpt.keys())}


def checkpoint_name(name: str, layout: str) -> str:
    """Our parameter name -> the Kyutai tensor name (for everything but rec_tok/cont_tok)."""
    if name == "tok_embeddings.weight" or name.startswith("layers."):
        return "embedder." + name
    m = re.match(r"bridges\.(\d+)\.(layer[12]\.weight)$", name)
    if m:
        return f"bridge_module.{m.group(1)}.{m.group(2)}" if layout == "multi" else f"bridge_module.{m.group(2)}"
    raise KeyError(name)


def weight_getter(ckpt: safetensors_io.Checkpoint, cfg: EncoderConfig, layout: str):
    def get(name: str) -> torch.Tensor:
        if name in ("rec_tok", "cont_tok"):
            rows = []
            for d in range(cfg.n_decoders):
                key = f"embedder.{name}.{d}.weight"
                rows.append(ckpt.get(key).reshape(1, cfg.dim) if key in ckpt else torch.zeros(1, cfg.dim))
            if name == "cont_tok" and f"embedder.cont_tok.0.weight" not in ckpt:
                raise ConversionError("the checkpoint has no <Cont> vector (embedder.cont_tok.*)")
            return torch.cat(rows)
        key = checkpoint_name(name, layout)
        if key not in ckpt:
            raise ConversionError(f"tensor {key} (for {name}) is missing from the checkpoint")
        return ckpt.get(key)
    return get


def load_encoder(ckpt_dir: str) -> ArcEncoder:
    """The whole encoder as a torch module (small checkpoints and tests; needs the full RAM)."""
    ckpt = safetensors_io.open_checkpoint(ckpt_dir)
    cfg, info = read_config(ckpt_dir, ckpt)
    enc = ArcEncoder(cfg)
    get = weight_getter(ckpt, cfg, info["layout"])
    enc.load_state_dict({k: get(k) for k in enc.state_dict()})
    return enc.eval()


def _default_name(ckpt_dir: str) -> str:
    base = os.path.basename(os.path.normpath(ckpt_dir))
    if base in ("ckpt", "checkpoint", "snapshot"):
        base = os.path.basename(os.path.dirname(os.path.normpath(ckpt_dir)))
    return base


def convert(ckpt_dir: str, decoder_index: int, out_dir: str, tokenizer: Optional[str] = None,
            dtype: str = "fp32", external: Optional[bool] = None, max_chunk_tokens: int = 1024,
            name: Optional[str] = None, license_text: Optional[str] = None,
            manifest_extra: Optional[dict] = None) -> dict:
    ckpt = safetensors_io.open_checkpoint(ckpt_dir)
    cfg, info = read_config(ckpt_dir, ckpt)
    if not 0 <= decoder_index < cfg.n_decoders:
        raise ConversionError(f"--decoder-index {decoder_index}: the checkpoint has {cfg.n_decoders} decoder(s)")
    os.makedirs(out_dir, exist_ok=True)
    export.export_encoder(os.path.join(out_dir, "encoder.onnx"), cfg, weight_getter(ckpt, cfg, info["layout"]),
                          decoder_index, dtype, external)
    tok_name = None
    if tokenizer:
        tok_name = "tokenizer.json"
        shutil.copyfile(tokenizer, os.path.join(out_dir, tok_name))
    src = _default_name(ckpt_dir)
    manifest = export.base_manifest(name or f"{src}-decoder{decoder_index}")
    manifest["description"] = (f"ARC encoder converted from {src} (decoder index {decoder_index}); "
                               "add a decoder with tools/import_decoder.py.")
    manifest["license"] = license_text or "see the source checkpoint's model card"
    manifest["encoder"] = export.encoder_manifest(cfg, decoder_index, tok_name, f"converted from {src}",
                                                  max_chunk_tokens, dtype)
    manifest["decoder"] = None
    manifest = export._merge(manifest, manifest_extra or {})
    export.write_manifest(out_dir, manifest)
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description="Convert a Kyutai ARC-Encoder checkpoint to an arc-model/1 encoder package.")
    ap.add_argument("--checkpoint", required=True, help="folder with config.json and model.safetensors")
    ap.add_argument("--decoder-index", type=int, default=0, help="multi checkpoints: 0 = Llama 3.1 8B, 1 = Mistral 7B")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", help="the encoder's tokenizer.json (Llama 3 for the released encoders); "
                                        "omit only for test checkpoints without one")
    ap.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    ap.add_argument("--external-data", choices=["auto", "yes", "no"], default="auto")
    ap.add_argument("--max-chunk-tokens", type=int, default=1024)
    ap.add_argument("--name")
    ap.add_argument("--license", dest="license_text")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if not a.tokenizer:
        print("note: no --tokenizer given; the manifest records tokenizer null", file=sys.stderr)
    try:
        m = convert(a.checkpoint, a.decoder_index, a.out, a.tokenizer, a.dtype,
                    {"auto": None, "yes": True, "no": False}[a.external_data], a.max_chunk_tokens, a.name, a.license_text)
    except (ConversionError, FileNotFoundError) as e:
        raise SystemExit(f"convert_kyutai: {e}")
    print(json.dumps({"out": a.out, "name": m["name"], "poolingFactor": m["encoder"]["poolingFactor"]}))


if __name__ == "__main__":
    main()
