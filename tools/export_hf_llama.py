"""Write a package's decoder (weights.safetensors + weights.config.json) as a Hugging Face
Llama folder, so a serving engine (vLLM, SGLang) can serve the same decoder the package runs
in-process. Used by the prepared device check (bench/device/vllm-check.sh) to compare engine
answers with ONNX answers on the bundled model.

    /usr/bin/python3 tools/export_hf_llama.py --package models/arc-tiny-code --out /tmp/arc-tiny-hf

Writes config.json (LlamaForCausalLM), model.safetensors, generation_config.json,
tokenizer.json and tokenizer_config.json. tools/model.py rotates adjacent pairs ('meta'
layout); Hugging Face Llama rotates halves, so q/k rows are permuted per head, the inverse of
what tools/import_decoder.py reads back (its test checks the round trip gives equal logits).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Dict, Optional, Sequence

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import import_decoder  # noqa: E402
import safetensors_io  # noqa: E402
from model import DecoderConfig  # noqa: E402


def meta_to_hf_rows(w: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """Per head, rows (0,1),(2,3),... -> first halves then second halves (rotate_half order)."""
    return w.reshape(heads, head_dim // 2, 2, -1).transpose(1, 2).reshape(heads * head_dim, -1).contiguous()


def export_hf(package: str, out: str) -> Dict[str, object]:
    with open(os.path.join(package, "weights.config.json"), encoding="utf-8") as f:
        cfg_all = json.load(f)
    with open(os.path.join(package, "arc-model.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    if not cfg_all.get("decoder"):
        raise SystemExit(f"{package}: weights.config.json has no decoder")
    cfg = DecoderConfig(**cfg_all["decoder"])
    if cfg.rope_layout not in ("meta", "hf"):
        raise SystemExit(f"unknown rope layout {cfg.rope_layout!r}")
    ckpt = safetensors_io.open_checkpoint(os.path.join(package, "weights.safetensors"))
    tensors: Dict[str, torch.Tensor] = {}
    for key in ckpt.keys():
        if not key.startswith("decoder."):
            continue
        name = key[len("decoder."):]
        t = ckpt.get(key).to(torch.float32)
        if cfg.rope_layout == "meta" and name.endswith("attention.wq.weight"):
            t = meta_to_hf_rows(t, cfg.n_heads, cfg.head_dim)
        elif cfg.rope_layout == "meta" and name.endswith("attention.wk.weight"):
            t = meta_to_hf_rows(t, cfg.n_kv_heads, cfg.head_dim)
        tensors[import_decoder.hf_name(name)] = t.contiguous()
    dec = manifest["decoder"]
    os.makedirs(out, exist_ok=True)
    safetensors_io.save_file(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": cfg.dim, "intermediate_size": cfg.hidden_dim, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size, "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
        "rope_scaling": cfg.rope_scaling, "tie_word_embeddings": cfg.tie_embeddings,
        "max_position_embeddings": cfg.context_length, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": dec["bosTokenId"], "eos_token_id": dec["eosTokenId"], "torch_dtype": "float32",
    }
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token_id": dec["bosTokenId"], "eos_token_id": dec["eosTokenId"]}, f, indent=2)
    shutil.copyfile(os.path.join(package, dec["tokenizer"]), os.path.join(out, "tokenizer.json"))
    with open(os.path.join(package, dec["tokenizer"]), encoding="utf-8") as f:
        added = {t["id"]: t["content"] for t in json.load(f).get("added_tokens", [])}
    tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.context_length,
               "bos_token": added.get(dec["bosTokenId"]), "eos_token": added.get(dec["eosTokenId"]),
               "add_bos_token": False, "add_eos_token": False}
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok_cfg, f, indent=2)
    return config


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    export_hf(a.package, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
