"""Add a Hugging Face Llama/Mistral decoder to an arc-model/1 package.

    /usr/bin/python3 tools/import_decoder.py --hf DIR --out PACKAGE [--dtype fp16] [--context-length N]
        [--embed-only]

DIR is a Hugging Face model folder: config.json, model.safetensors or sharded
model-*.safetensors with model.safetensors.index.json, tokenizer.json. PACKAGE already holds
an encoder (tools/convert_kyutai.py); this writes decoder.onnx, embed.onnx, the decoder's
tokenizer and the manifest's "decoder" section. With --embed-only, decoder.onnx is left to
another tool (ONNX Runtime GenAI's model builder with exclude_embeds=true, see README.md).

Hugging Face checkpoints store q/k rows already permuted for the "rotate half" RoPE, so the
decoder is built with rope_layout 'hf'. Weights stream one tensor at a time (bf16 is widened
to fp32 per tensor); RAM peaks near the largest tensor (the embedding table / lm_head).
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import sys
from typing import Optional, Sequence

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import DecoderConfig  # noqa: E402
import export  # noqa: E402
import safetensors_io  # noqa: E402


class DecoderImportError(ValueError):
    pass


SUPPORTED = ("llama", "mistral")
HF_NAMES = {
    "attention.wq.weight": "self_attn.q_proj.weight", "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight", "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight", "feed_forward.w2.weight": "mlp.down_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "attention_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
}


def read_config(hf_dir: str, context_length: Optional[int] = None) -> DecoderConfig:
    with open(os.path.join(hf_dir, "config.json"), encoding="utf-8") as f:
        c = json.load(f)
    mt = c.get("model_type")
    if mt not in SUPPORTED:
        raise DecoderImportError(f"model_type {mt!r} is not supported (only {', '.join(SUPPORTED)})")
    if c.get("hidden_act", "silu") != "silu":
        raise DecoderImportError(f"hidden_act {c.get('hidden_act')!r}: only silu (SwiGLU) is supported")
    if c.get("attention_bias") or c.get("mlp_bias"):
        raise DecoderImportError("attention/MLP biases are not supported by tools/model.py's decoder")
    scaling = c.get("rope_scaling")
    if scaling is not None:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "default":
            scaling = None
        elif kind != "llama3":
            raise DecoderImportError(f"rope_scaling type {kind!r} cannot be represented (supported: none, 'llama3')")
        else:
            missing = [k for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
                       if k not in scaling]
            if missing:
                raise DecoderImportError(f"rope_scaling llama3 lacks {missing}")
            scaling = {"rope_type": "llama3", **{k: scaling[k] for k in ("factor", "low_freq_factor", "high_freq_factor",
                                                                        "original_max_position_embeddings")}}
    dim, heads = int(c["hidden_size"]), int(c["num_attention_heads"])
    window = c.get("sliding_window")
    limit = int(c.get("max_position_embeddings") or 4096)
    if window:  # full attention equals sliding-window attention as long as the context fits the window
        limit = min(limit, int(window))
    if context_length is not None:
        if context_length > limit:
            raise DecoderImportError(f"--context-length {context_length} exceeds what the model supports here ({limit})")
        limit = context_length
    return DecoderConfig(
        vocab_size=int(c["vocab_size"]), dim=dim, n_layers=int(c["num_hidden_layers"]), n_heads=heads,
        n_kv_heads=int(c.get("num_key_value_heads") or heads), head_dim=int(c.get("head_dim") or dim // heads),
        hidden_dim=int(c["intermediate_size"]), norm_eps=float(c.get("rms_norm_eps", 1e-6)),
        rope_theta=float(c.get("rope_theta", 10000.0)), rope_layout="hf", rope_scaling=scaling,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)), context_length=limit)


def hf_name(name: str) -> str:
    if name == "tok_embeddings.weight":
        return "model.embed_tokens.weight"
    if name == "norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    m = re.match(r"layers\.(\d+)\.(.+)$", name)
    if m and m.group(2) in HF_NAMES:
        return f"model.layers.{m.group(1)}.{HF_NAMES[m.group(2)]}"
    raise KeyError(name)


def weight_getter(ckpt: safetensors_io.Checkpoint):
    def get(name: str) -> torch.Tensor:
        key = hf_name(name)
        if key not in ckpt:
            raise DecoderImportError(f"tensor {key} (for {name}) is missing from the checkpoint")
        return ckpt.get(key)
    return get


def special_ids(hf_dir: str):
    ids = {}
    for fname in ("generation_config.json", "config.json"):
        path = os.path.join(hf_dir, fname)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                c = json.load(f)
            for k in ("bos_token_id", "eos_token_id"):
                v = c.get(k)
                if isinstance(v, list):
                    v = v[0] if v else None
                if v is not None and k not in ids:
                    ids[k] = int(v)
    return ids.get("bos_token_id"), ids.get("eos_token_id")


def load_decoder(hf_dir: str):
    """The decoder as a torch module (small models and tests)."""
    from model import Decoder
    cfg = read_config(hf_dir)
    dec = Decoder(cfg)
    get = weight_getter(safetensors_io.open_checkpoint(hf_dir))
    dec.load_state_dict({k: get(k).to(torch.float32) for k in dec.state_dict()})
    return dec.eval()


def import_decoder(hf_dir: str, out_dir: str, dtype: str = "fp32", external: Optional[bool] = None,
                   context_length: Optional[int] = None, embed_only: bool = False) -> dict:
    manifest_path = os.path.join(out_dir, "arc-model.json")
    if not os.path.exists(manifest_path):
        raise DecoderImportError(f"{manifest_path} not found: convert an encoder into {out_dir} first "
                           "(tools/convert_kyutai.py)")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    cfg = read_config(hf_dir, context_length)
    enc = manifest.get("encoder") or {}
    if enc.get("outputSize") not in (None, cfg.dim):
        raise DecoderImportError(f"the encoder projects to width {enc['outputSize']} but this decoder's hidden size is "
                           f"{cfg.dim}: pick the matching decoder (or decoder index)")
    tok_src = os.path.join(hf_dir, "tokenizer.json")
    if not os.path.exists(tok_src):
        raise DecoderImportError(f"{tok_src} not found: the decoder's tokenizer.json is required")
    enc_tok = enc.get("tokenizer")
    if enc_tok and filecmp.cmp(tok_src, os.path.join(out_dir, enc_tok), shallow=False):
        tok_name = enc_tok
    else:
        tok_name = "decoder-tokenizer.json" if enc_tok == "tokenizer.json" else "tokenizer.json"
        shutil.copyfile(tok_src, os.path.join(out_dir, tok_name))
    ckpt = safetensors_io.open_checkpoint(hf_dir)
    get = weight_getter(ckpt)
    export.export_embed(os.path.join(out_dir, "embed.onnx"), cfg, get, dtype, external)
    if not embed_only:
        export.export_decoder(os.path.join(out_dir, "decoder.onnx"), cfg, get, dtype, external)
    bos, eos = special_ids(hf_dir)
    manifest["decoder"] = export.decoder_manifest(cfg, tok_name, bos, eos, dtype)
    manifest["decoder"]["source"] = f"imported from {os.path.basename(os.path.normpath(hf_dir))}"
    export.write_manifest(out_dir, manifest)
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description="Add a Hugging Face Llama/Mistral decoder to an arc-model/1 package.")
    ap.add_argument("--hf", required=True, help="Hugging Face model folder (config.json, *.safetensors, tokenizer.json)")
    ap.add_argument("--out", required=True, help="package folder that already has arc-model.json + encoder.onnx")
    ap.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    ap.add_argument("--external-data", choices=["auto", "yes", "no"], default="auto")
    ap.add_argument("--context-length", type=int, help="decoder window recorded in the manifest")
    ap.add_argument("--embed-only", action="store_true", help="write embed.onnx only (decoder.onnx from another tool)")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    try:
        m = import_decoder(a.hf, a.out, a.dtype, {"auto": None, "yes": True, "no": False}[a.external_data],
                           a.context_length, a.embed_only)
    except (DecoderImportError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"import_decoder: {e}")
    print(json.dumps({"out": a.out, "decoder": m["decoder"]}))


if __name__ == "__main__":
    main()
