"""Write an `arc-model/1` package (docs/DESIGN.md) from tools/model.py modules and their weights.

How the export works, and why it needs little more RAM than one tensor:
1. A *skeleton* of the module is built from its config: every parameter lives on torch's
   'meta' device while the constructor runs (no memory), then becomes a stride-0 view of a
   one-element tensor (a few bytes, a distinct value per parameter so that the exporter's
   de-duplication of equal initializers cannot merge two weights).
2. `torch.onnx.export` traces the skeleton with `export_params=False`: the graph is recorded
   with each parameter as a named graph input and no weight bytes at all. Constant folding is
   off so the names survive; ONNX Runtime folds the small shape arithmetic at load time.
3. Each parameter input is replaced by an initializer whose bytes are read from the weight
   source one tensor at a time (a trained module's state dict, or a safetensors checkpoint
   read lazily) and written inline or, for large models, appended to `<file>.data`
   (ONNX external data). A weight consumed only by a `Transpose` (how `nn.Linear` is
   traced) is stored already transposed and the node is dropped.
With dtype 'fp16' the initializers are stored as float16, each followed by a Cast to float32:
the file (and download) halves, graph inputs/outputs and arithmetic stay float32.

Python use: `export_package(out_dir, dec, enc, decoder_index, tokenizer_json_path, manifest_extra)`.
CLI: `python3 tools/export.py --weights W.safetensors --config C.json --out DIR --tokenizer T.json`
where C.json is `{"encoder": EncoderConfig fields, "decoder": DecoderConfig fields | null,
"manifest": {...}}` and W holds `encoder.<param>` / `decoder.<param>` (see `save_checkpoint`).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
import sys
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import (ArcEncoder, Decoder, DecoderConfig, EncoderConfig,  # noqa: E402
                   config_to_dict, pool_matrix)
import safetensors_io  # noqa: E402

OPSET = 17
FORMAT = "arc-model/1"
# Above this many weight bytes per ONNX file the weights go to external data: protobuf caps a
# file at 2 GiB, and inline weights cost two extra copies in RAM while the file is written.
EXTERNAL_THRESHOLD = 64 << 20

WeightGetter = Callable[[str], torch.Tensor]

DEFAULT_PROMPT = {"questionTemplate": "Question: {question}\nAnswer: ", "stop": ["\n"], "maxNewTokens": 48}
DEFAULT_DOCUMENT_FORMAT = {"header": "### {path}\n"}


# --------------------------------------------------------------------------- skeletons

@contextlib.contextmanager
def _parameters_on_meta():
    """While active, every parameter a module registers is moved to the meta device."""
    original = nn.Module.register_parameter

    def register(self, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.detach().to("meta"), requires_grad=False)
        original(self, name, param)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def skeleton(cls, cfg) -> nn.Module:
    """The module with weightless stand-ins for its parameters (enough to trace it)."""
    with _parameters_on_meta(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = cls(cfg)
    for i, (name, p) in enumerate(list(mod.named_parameters())):
        owner = mod.get_submodule(name.rpartition(".")[0]) if "." in name else mod
        value = torch.full((1,) * p.dim(), 0.01 + 1e-5 * i, dtype=torch.float32)
        owner._parameters[name.rpartition(".")[2]] = nn.Parameter(value.expand(p.shape), requires_grad=False)
    return mod.eval()


def module_weights(mod: nn.Module) -> WeightGetter:
    sd = mod.state_dict()
    return lambda name: sd[name]


# --------------------------------------------------------------------------- export wrappers

class _EncoderGraph(nn.Module):
    def __init__(self, enc: ArcEncoder, decoder_index: int):
        super().__init__()
        self.enc, self.d = enc, decoder_index

    def forward(self, input_ids, attention_mask, pool):
        cont = self.enc.cont(self.d).reshape(1, 1, -1)
        return self.enc(input_ids, attention_mask, pool, self.d), cont


class _EmbedGraph(nn.Module):
    def __init__(self, dec: Decoder):
        super().__init__()
        self.dec = dec

    def forward(self, input_ids):
        return self.dec.embed(input_ids)


class _DecoderGraph(nn.Module):
    def __init__(self, dec: Decoder):
        super().__init__()
        self.dec = dec

    def forward(self, inputs_embeds, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, presents = self.dec(inputs_embeds, attention_mask, position_ids, past)
        return (logits,) + tuple(t for kv in presents for t in kv)


# --------------------------------------------------------------------------- graph -> file

@contextlib.contextmanager
def _weightless_export(params: Sequence[torch.Tensor]):
    """Keep torch.onnx.export from materializing the stand-ins. Its tracer clones every graph input, parameters included, to report input
    states; a clone of a stride-0 stand-in would allocate the full weight. Hand back the
    stand-in itself instead (it is never written to)."""
    ptrs = {p.data_ptr() for p in params}
    original = torch.Tensor.clone

    def clone(self, *a, **k):
        if self.data_ptr() in ptrs and 0 in self.stride():
            return self
        return original(self, *a, **k)

    torch.Tensor.clone = clone
    # The exporter's whole-graph shape inference turns every parameter it is handed into an
    # ONNX tensor (a dense copy). The traced graph already carries each parameter's shape and
    # type, so it runs without the values; the exported graph is the same (checked by the
    # tests: the committed fixture is byte-identical either way).
    infer = getattr(torch._C, "_jit_pass_onnx_graph_shape_type_inference", None)
    if infer is not None:
        torch._C._jit_pass_onnx_graph_shape_type_inference = lambda graph, params, *rest: infer(graph, {}, *rest)
    try:
        yield
    finally:
        torch.Tensor.clone = original
        if infer is not None:
            torch._C._jit_pass_onnx_graph_shape_type_inference = infer


def _trace(wrapper: nn.Module, args: Tuple[torch.Tensor, ...], input_names: List[str],
           output_names: List[str], dynamic_axes: Dict[str, Dict[int, str]]) -> onnx.ModelProto:
    import io
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings(), _weightless_export(list(wrapper.parameters())):
        warnings.simplefilter("ignore")  # tracer warnings about shape ints; verified by the tests
        torch.onnx.export(wrapper, args, buf, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, export_params=False,
                          do_constant_folding=False)
    return onnx.load_from_string(buf.getvalue())


def _release_freed_memory() -> None:
    """Give freed heap pages back to the OS (glibc keeps tensors up to 32 MB in its heap after
    the first large free, so without this RSS creeps up by a few of them)."""
    global _libc
    if _libc is None:
        try:
            import ctypes
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)


_libc = None


def _weights_to_initializers(model: onnx.ModelProto, prefix: str, get: WeightGetter, path: str,
                             dtype: str, external: Optional[bool], param_shapes: Dict[str, Sequence[int]]) -> None:
    """Turn parameter graph inputs into initializers filled from `get`, then write `path`."""
    g = model.graph
    consumers: Dict[str, List[onnx.NodeProto]] = {}
    for node in g.node:
        for x in node.input:
            consumers.setdefault(x, []).append(node)
    # parameters the traced function never reads (other decoders' projectors, the decoder's
    # layers in embed.onnx) are left out
    params = [i.name for i in g.input if i.name.startswith(prefix) and i.name in consumers]
    keep_inputs = [i for i in g.input if not i.name.startswith(prefix)]
    del g.input[:]
    g.input.extend(keep_inputs)

    total = sum(int(np.prod(param_shapes[p[len(prefix):]])) for p in params)
    itemsize = 2 if dtype == "fp16" else 4
    if external is None:
        external = total * itemsize > EXTERNAL_THRESHOLD
    data_name = os.path.basename(path) + ".data"
    data_file = open(path + ".data", "wb") if external else None
    offset = 0
    drop_nodes = set()
    casts = []
    try:
        for full in params:
            name = full[len(prefix):]
            t = get(name).detach().to(torch.float32)
            if list(t.shape) != list(param_shapes[name]):
                raise ValueError(f"weight {name}: shape {list(t.shape)}, config expects {list(param_shapes[name])}")
            users = consumers.get(full, [])
            init_name = full
            if (len(users) == 1 and users[0].op_type == "Transpose" and t.dim() == 2
                    and [a.ints for a in users[0].attribute if a.name == "perm"] == [[1, 0]]):
                t = t.t()
                init_name = users[0].output[0]
                drop_nodes.add(id(users[0]))
            arr = t.contiguous().numpy().astype(np.float16 if dtype == "fp16" else np.float32, copy=False)
            stored = init_name + "_fp16" if dtype == "fp16" else init_name
            if dtype == "fp16":
                casts.append(helper.make_node("Cast", [stored], [init_name], to=TensorProto.FLOAT,
                                              name=f"cast_{init_name}"))
            tp = TensorProto()
            tp.name = stored
            tp.data_type = TensorProto.FLOAT16 if dtype == "fp16" else TensorProto.FLOAT
            tp.dims.extend(arr.shape)
            arr = np.ascontiguousarray(arr)
            if data_file is not None:
                pad = -offset % 64  # aligned so a runtime can map tensors directly
                data_file.write(b"\0" * pad)
                offset += pad
                data_file.write(memoryview(arr).cast("B"))  # no extra bytes copy
                tp.data_location = TensorProto.EXTERNAL
                for k, v in (("location", data_name), ("offset", str(offset)), ("length", str(arr.nbytes))):
                    e = tp.external_data.add()
                    e.key, e.value = k, v
                offset += arr.nbytes
            else:
                tp.raw_data = arr.tobytes()
            g.initializer.append(tp)
            del t, arr
            _release_freed_memory()
    finally:
        if data_file is not None:
            data_file.close()
    if drop_nodes or casts:
        nodes = casts + [n for n in g.node if id(n) not in drop_nodes]
        del g.node[:]
        g.node.extend(nodes)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    onnx.checker.check_model(path)


def _export_module(wrapper: nn.Module, args, input_names, output_names, dynamic_axes, path: str,
                   prefix: str, get: WeightGetter, dtype: str, external: Optional[bool]) -> None:
    shapes = {n[len(prefix):]: list(p.shape) for n, p in wrapper.named_parameters() if n.startswith(prefix)}
    model = _trace(wrapper, args, input_names, output_names, dynamic_axes)
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")
    _weights_to_initializers(model, prefix, get, path, dtype, external, shapes)


def export_encoder(path: str, cfg: EncoderConfig, get: WeightGetter, decoder_index: int = 0,
                   dtype: str = "fp32", external: Optional[bool] = None) -> None:
    """encoder.onnx: (input_ids, attention_mask, pool_matrix) -> (embeddings, cont_embedding)."""
    if not 0 <= decoder_index < cfg.n_decoders:
        raise ValueError(f"decoder index {decoder_index} out of range: the encoder has {cfg.n_decoders}")
    wrapper = _EncoderGraph(skeleton(ArcEncoder, cfg), decoder_index)
    lengths = [7, 5]  # traced with b=2, L=7, m=2: every axis differs so none is taken as a constant
    ids = torch.zeros(2, 7, dtype=torch.long)
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2], dtype=torch.long)
    pool = pool_matrix(lengths, cfg.pooling_factor, 7)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "pool_matrix": {0: "batch", 1: "groups", 2: "tokens"}, "embeddings": {0: "batch", 1: "groups"}}
    _export_module(wrapper, (ids, mask, pool), ["input_ids", "attention_mask", "pool_matrix"],
                   ["embeddings", "cont_embedding"], axes, path, "enc.", get, dtype, external)


def export_embed(path: str, cfg: DecoderConfig, get: WeightGetter, dtype: str = "fp32",
                 external: Optional[bool] = None) -> None:
    """embed.onnx: input_ids [b, s] -> inputs_embeds [b, s, dim]."""
    wrapper = _EmbedGraph(skeleton(Decoder, cfg))
    ids = torch.zeros(2, 3, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "inputs_embeds": {0: "batch", 1: "sequence"}}
    _export_module(wrapper, (ids,), ["input_ids"], ["inputs_embeds"], axes, path, "dec.", get, dtype, external)


def decoder_io_names(n_layers: int) -> Tuple[List[str], List[str]]:
    ins = ["inputs_embeds", "attention_mask", "position_ids"]
    outs = ["logits"]
    for i in range(n_layers):
        ins += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        outs += [f"present.{i}.key", f"present.{i}.value"]
    return ins, outs


def export_decoder(path: str, cfg: DecoderConfig, get: WeightGetter, dtype: str = "fp32",
                   external: Optional[bool] = None) -> None:
    """decoder.onnx with KV cache in and out (names as in docs/DESIGN.md)."""
    wrapper = _DecoderGraph(skeleton(Decoder, cfg))
    b, s, past = 2, 3, 4
    args = [torch.zeros(b, s, cfg.dim), torch.ones(b, past + s, dtype=torch.long),
            torch.arange(past, past + s).expand(b, s).contiguous()]
    args += [torch.zeros(b, cfg.n_kv_heads, past, cfg.head_dim) for _ in range(2 * cfg.n_layers)]
    ins, outs = decoder_io_names(cfg.n_layers)
    axes = {"inputs_embeds": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total_sequence"},
            "position_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
    for n in ins[3:]:
        axes[n] = {0: "batch", 2: "past_sequence"}
    for n in outs[1:]:
        axes[n] = {0: "batch", 2: "total_sequence"}
    _export_module(wrapper, tuple(args), ins, outs, axes, path, "dec.", get, dtype, external)


# --------------------------------------------------------------------------- manifest + package

def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def special_token_id(tokenizer_json_path: Optional[str], candidates: Sequence[str]) -> Optional[int]:
    """Id of the first added token whose content is one of `candidates`, if any."""
    if not tokenizer_json_path:
        return None
    with open(tokenizer_json_path, encoding="utf-8") as f:
        tok = json.load(f)
    added = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    for c in candidates:
        if c in added:
            return added[c]
    return None


BOS_NAMES = ("<|begin_of_text|>", "<|bos|>", "<s>", "<bos>")
EOS_NAMES = ("<|end_of_text|>", "<|eos|>", "</s>", "<eos>", "<|endoftext|>")


def encoder_manifest(cfg: EncoderConfig, decoder_index: int, tokenizer: Optional[str],
                     source: str, max_chunk_tokens: int, fmt_dtype: str) -> dict:
    return {"file": "encoder.onnx", "tokenizer": tokenizer, "poolingFactor": cfg.pooling_factor,
            "maxChunkTokens": max_chunk_tokens, "hiddenSize": cfg.dim, "outputSize": cfg.out_dim,
            "decoderIndex": decoder_index, "addBos": False, "source": source, "dtype": fmt_dtype}


def decoder_manifest(cfg: DecoderConfig, tokenizer: Optional[str], bos: Optional[int], eos: Optional[int],
                     fmt_dtype: str) -> dict:
    return {"file": "decoder.onnx", "embed": "embed.onnx", "tokenizer": tokenizer, "hiddenSize": cfg.dim,
            "numLayers": cfg.n_layers, "numHeads": cfg.n_heads, "numKvHeads": cfg.n_kv_heads,
            "headDim": cfg.head_dim, "vocabSize": cfg.vocab_size, "contextLength": cfg.context_length,
            "bosTokenId": bos, "eosTokenId": eos, "dtype": fmt_dtype}


def write_manifest(out_dir: str, manifest: dict) -> None:
    with open(os.path.join(out_dir, "arc-model.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def base_manifest(name: str) -> dict:
    return {"format": FORMAT, "name": name, "description": "", "license": "",
            "encoder": None, "decoder": None, "prompt": dict(DEFAULT_PROMPT),
            "documentFormat": dict(DEFAULT_DOCUMENT_FORMAT)}


def export_package(out_dir: str, dec: Optional[Decoder], enc: ArcEncoder, decoder_index: int = 0,
                   tokenizer_json_path: Optional[str] = None, manifest_extra: Optional[dict] = None,
                   dtype: str = "fp32", external: Optional[bool] = None) -> dict:
    """Write encoder.onnx (+ embed.onnx and decoder.onnx when `dec` is given), the tokenizer and
    arc-model.json into out_dir. `manifest_extra` is merged into the manifest last (nested dicts
    merge key by key), e.g. {"name": ..., "encoder": {"maxChunkTokens": 256, "source": ...},
    "decoder": {"bosTokenId": 1, "eosTokenId": 2}}. Returns the manifest."""
    if dtype not in ("fp32", "fp16"):
        raise ValueError("dtype must be 'fp32' or 'fp16'")
    manifest_extra = manifest_extra or {}
    os.makedirs(out_dir, exist_ok=True)
    tok_name = None
    if tokenizer_json_path:
        tok_name = "tokenizer.json"
        dst = os.path.join(out_dir, tok_name)
        if os.path.abspath(tokenizer_json_path) != os.path.abspath(dst):
            shutil.copyfile(tokenizer_json_path, dst)
    with torch.no_grad():
        export_encoder(os.path.join(out_dir, "encoder.onnx"), enc.cfg, module_weights(enc), decoder_index, dtype, external)
        manifest = base_manifest(manifest_extra.get("name", "arc-model"))
        manifest["encoder"] = encoder_manifest(enc.cfg, decoder_index, tok_name, "trained here",
                                               manifest_extra.get("encoder", {}).get("maxChunkTokens", 256), dtype)
        if dec is not None:
            get = module_weights(dec)
            export_embed(os.path.join(out_dir, "embed.onnx"), dec.cfg, get, dtype, external)
            export_decoder(os.path.join(out_dir, "decoder.onnx"), dec.cfg, get, dtype, external)
            manifest["decoder"] = decoder_manifest(dec.cfg, tok_name, special_token_id(tokenizer_json_path, BOS_NAMES),
                                                   special_token_id(tokenizer_json_path, EOS_NAMES), dtype)
    manifest = _merge(manifest, manifest_extra)
    write_manifest(out_dir, manifest)
    return manifest


# --------------------------------------------------------------------------- checkpoint files

def save_checkpoint(weights_path: str, config_path: str, enc: ArcEncoder, dec: Optional[Decoder],
                    manifest: Optional[dict] = None) -> None:
    """The on-disk form the CLI reads: one safetensors file + one config JSON."""
    tensors = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    if dec is not None:
        tensors.update({f"decoder.{k}": v for k, v in dec.state_dict().items()})
    safetensors_io.save_file(weights_path, tensors, {"format": "pt"})
    cfg = {"encoder": config_to_dict(enc.cfg), "decoder": None if dec is None else config_to_dict(dec.cfg),
           "manifest": manifest or {}}
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)


def export_from_files(weights_path: str, config_path: str, out_dir: str, tokenizer: Optional[str],
                      decoder_index: int = 0, dtype: str = "fp32", external: Optional[bool] = None,
                      manifest_extra: Optional[dict] = None) -> dict:
    """Like export_package, but streams weights from a safetensors file (one tensor in RAM)."""
    with open(config_path, encoding="utf-8") as f:
        cfg = json.load(f)
    ckpt = safetensors_io.open_checkpoint(weights_path)
    enc_cfg = EncoderConfig(**cfg["encoder"])
    dec_cfg = DecoderConfig(**cfg["decoder"]) if cfg.get("decoder") else None
    extra = _merge(cfg.get("manifest") or {}, manifest_extra or {})
    os.makedirs(out_dir, exist_ok=True)
    tok_name = None
    if tokenizer:
        tok_name = "tokenizer.json"
        shutil.copyfile(tokenizer, os.path.join(out_dir, tok_name))
    export_encoder(os.path.join(out_dir, "encoder.onnx"), enc_cfg, lambda n: ckpt.get("encoder." + n),
                   decoder_index, dtype, external)
    manifest = base_manifest(extra.get("name", "arc-model"))
    manifest["encoder"] = encoder_manifest(enc_cfg, decoder_index, tok_name, "trained here",
                                           extra.get("encoder", {}).get("maxChunkTokens", 256), dtype)
    if dec_cfg is not None:
        get = lambda n: ckpt.get("decoder." + n)  # noqa: E731
        export_embed(os.path.join(out_dir, "embed.onnx"), dec_cfg, get, dtype, external)
        export_decoder(os.path.join(out_dir, "decoder.onnx"), dec_cfg, get, dtype, external)
        manifest["decoder"] = decoder_manifest(dec_cfg, tok_name, special_token_id(tokenizer, BOS_NAMES),
                                               special_token_id(tokenizer, EOS_NAMES), dtype)
    manifest = _merge(manifest, extra)
    write_manifest(out_dir, manifest)
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description="Export an arc-model/1 package from weights + config.")
    ap.add_argument("--weights", required=True, help="safetensors with encoder.* and decoder.* tensors")
    ap.add_argument("--config", required=True, help='JSON {"encoder": {...}, "decoder": {...}|null, "manifest": {...}}')
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", help="tokenizer.json (Hugging Face tokenizers format)")
    ap.add_argument("--decoder-index", type=int, default=0)
    ap.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    ap.add_argument("--external-data", choices=["auto", "yes", "no"], default="auto")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    external = {"auto": None, "yes": True, "no": False}[a.external_data]
    m = export_from_files(a.weights, a.config, a.out, a.tokenizer, a.decoder_index, a.dtype, external)
    print(json.dumps({"out": a.out, "name": m["name"], "decoder": m["decoder"] is not None}))


if __name__ == "__main__":
    main()
