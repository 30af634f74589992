"""Shared helpers for the tooling tests (run: npm run test:python)."""
from __future__ import annotations

import os
import sys
import unittest
from typing import Dict, Sequence

import numpy as np
import torch

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TOOLS)
SHARED = os.path.join(os.path.dirname(REPO), "shared")
KYUTAI_TINY = os.path.join(SHARED, "fixtures", "kyutai-tiny")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

torch.set_num_threads(1)

import ort_node  # noqa: E402
from model import group_sizes  # noqa: E402

ORT_OK, ORT_WHY = ort_node.available()
needs_ort = unittest.skipUnless(ORT_OK, f"onnxruntime-node unavailable: {ORT_WHY}")


def pool_np(lengths: Sequence[int], x: int, L: int) -> np.ndarray:
    """Pool matrix built from the manifest rule in numpy (what a runtime does)."""
    groups = [group_sizes(n, x) for n in lengths]
    m = max(len(g) for g in groups)
    P = np.zeros((len(lengths), m, L), np.float32)
    for b, g in enumerate(groups):
        start = 0
        for i, k in enumerate(g):
            P[b, i, start:start + k] = 1.0 / k
            start += k
    return P


def encoder_feeds(docs: Sequence[Sequence[int]], x: int) -> Dict[str, np.ndarray]:
    L = max(len(d) for d in docs)
    ids = np.zeros((len(docs), L), np.int64)
    mask = np.zeros((len(docs), L), np.int64)
    for i, d in enumerate(docs):
        ids[i, :len(d)] = d
        mask[i, :len(d)] = 1
    return {"input_ids": ids, "attention_mask": mask, "pool_matrix": pool_np([len(d) for d in docs], x, L)}


def empty_past(n_layers: int, b: int, n_kv: int, hd: int) -> Dict[str, np.ndarray]:
    return {f"past_key_values.{i}.{n}": np.zeros((b, n_kv, 0, hd), np.float32)
            for i in range(n_layers) for n in ("key", "value")}


def randomize(module: torch.nn.Module, seed: int, std: float = 0.1) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
    return module.eval()
