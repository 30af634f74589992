"""Read and write safetensors files without the `safetensors` package.

The format: 8 bytes little-endian header length N, N bytes of JSON
(`{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}`,
offsets relative to the end of the header), then the raw little-endian tensor bytes.

Reading is lazy: `SafetensorsFile.get(name)` reads one tensor from disk, so a converter can
stream a 12 GB checkpoint while holding one tensor at a time. Sharded Hugging Face folders
(`model.safetensors.index.json`) are opened with `open_checkpoint`.
"""
from __future__ import annotations

import json
import os
import struct
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import torch

# safetensors dtype -> (torch dtype, bytes per element)
DTYPES: Dict[str, Tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
TORCH_TO_ST = {v[0]: k for k, v in DTYPES.items()}

MAX_HEADER = 100 * 1024 * 1024  # refuse absurd headers (corrupt file) before reading them


class SafetensorsError(ValueError):
    pass


class SafetensorsFile:
    """One .safetensors file, opened lazily."""

    def __init__(self, path: str):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise SafetensorsError(f"{path}: too short to be a safetensors file")
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_HEADER or 8 + n > size:
                raise SafetensorsError(f"{path}: header length {n} is not plausible (file size {size})")
            header = json.loads(f.read(n).decode("utf-8"))
        self.metadata: Dict[str, str] = header.pop("__metadata__", None) or {}
        self.header: Dict[str, dict] = header
        self.data_start = 8 + n
        for name, info in header.items():
            if info["dtype"] not in DTYPES:
                raise SafetensorsError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
            begin, end = info["data_offsets"]
            want = int(np.prod(info["shape"], dtype=np.int64)) * DTYPES[info["dtype"]][1]
            if end - begin != want or self.data_start + end > size:
                raise SafetensorsError(f"{path}: tensor {name} has inconsistent offsets")

    def keys(self) -> List[str]:
        return sorted(self.header)

    def __contains__(self, name: str) -> bool:
        return name in self.header

    def shape(self, name: str) -> List[int]:
        return list(self.header[name]["shape"])

    def dtype(self, name: str) -> torch.dtype:
        return DTYPES[self.header[name]["dtype"]][0]

    def get(self, name: str) -> torch.Tensor:
        """Read one tensor into a fresh CPU tensor (one copy of its bytes)."""
        info = self.header[name]
        begin, end = info["data_offsets"]
        buf = bytearray(end - begin)
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            if f.readinto(buf) != len(buf):
                raise SafetensorsError(f"{self.path}: truncated data for {name}")
        dtype = DTYPES[info["dtype"]][0]
        if len(buf) == 0:
            return torch.empty(info["shape"], dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(info["shape"])


class Checkpoint:
    """A set of safetensors files seen as one name -> tensor mapping."""

    def __init__(self, files: Iterable[SafetensorsFile]):
        self.files = list(files)
        self.where: Dict[str, SafetensorsFile] = {}
        for f in self.files:
            for k in f.header:
                if k in self.where:
                    raise SafetensorsError(f"tensor {k} appears in both {self.where[k].path} and {f.path}")
                self.where[k] = f

    def keys(self) -> List[str]:
        return sorted(self.where)

    def __contains__(self, name: str) -> bool:
        return name in self.where

    def shape(self, name: str) -> List[int]:
        return self.where[name].shape(name)

    def get(self, name: str) -> torch.Tensor:
        if name not in self.where:
            raise KeyError(f"tensor {name!r} is not in the checkpoint")
        return self.where[name].get(name)


def open_checkpoint(path: str) -> Checkpoint:
    """A .safetensors file, or a folder with model.safetensors / a sharded index / *.safetensors."""
    if os.path.isfile(path):
        return Checkpoint([SafetensorsFile(path)])
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        return Checkpoint(SafetensorsFile(os.path.join(path, s)) for s in shards)
    single = os.path.join(path, "model.safetensors")
    if os.path.exists(single):
        return Checkpoint([SafetensorsFile(single)])
    files = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors files in {path}")
    return Checkpoint(SafetensorsFile(os.path.join(path, n)) for n in files)


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: move the raw 16-bit words
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save_file(path: str, tensors: Mapping[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """Write tensors (sorted by name, like the reference writer) with an 8-byte aligned header."""
    names = sorted(tensors)
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name in names:
        t = tensors[name]
        if t.dtype not in TORCH_TO_ST:
            raise SafetensorsError(f"tensor {name}: dtype {t.dtype} cannot be stored")
        n = t.numel() * t.element_size()
        header[name] = {"dtype": TORCH_TO_ST[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name in names:
            f.write(tensor_bytes(tensors[name]))
    os.replace(tmp, path)


def load_file(path: str) -> Dict[str, torch.Tensor]:
    f = SafetensorsFile(path)
    return {k: f.get(k) for k in f.keys()}


def iter_tensors(ckpt: Checkpoint) -> Iterator[Tuple[str, torch.Tensor]]:
    for k in ckpt.keys():
        yield k, ckpt.get(k)
