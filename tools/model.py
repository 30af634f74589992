"""The one reference definition of the ARC architecture used by this project.

A Llama-family decoder that reads `inputs_embeds` (with a KV cache) and the ARC encoder
("mean pooled queries" in its last layer, bidirectional attention, a bias-free two-layer
projector, learned <Rec>/<Cont> vectors per target decoder). Training (train.py), ONNX
export (export.py) and checkpoint conversion (convert_kyutai.py) all build these modules.

Shapes: b batch, s/L sequence, m pooled rows, d model width, h heads, k kv heads, e head dim.
Runs on torch 1.13 (no scaled_dot_product_attention: attention is written out).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------- configs

@dataclass
class TransformerConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_dim: int
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    # 'meta': adjacent pairs (2i, 2i+1) rotate together (Meta/Kyutai checkpoints).
    # 'hf': first half / second half rotate together (Hugging Face "rotate_half").
    rope_layout: str = "meta"
    # None: plain RoPE (Kyutai encoders ignore Llama 3 scaling). {"rope_type": "llama3", "factor",
    # "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}: Llama 3.1 decoders.
    rope_scaling: Optional[dict] = None


@dataclass
class DecoderConfig(TransformerConfig):
    tie_embeddings: bool = True
    context_length: int = 512


@dataclass
class EncoderConfig(TransformerConfig):
    pooling_factor: int = 4
    proj_hidden: int = 0  # projector hidden width (Kyutai: 2048)
    out_dim: int = 0  # projected width = decoder width
    n_decoders: int = 1


def config_to_dict(cfg) -> dict:
    return asdict(cfg)


# --------------------------------------------------------------------------- pooling groups

def group_sizes(n: int, x: int) -> List[int]:
    """Token counts of the pooled groups for a sequence of n tokens and pooling factor x.

    Same rule as the reference `split_integer(n, -x)`: n < x gives one group; x | n gives
    n/x groups of x; otherwise n//x + 1 groups of near-equal size, larger ones first.
    """
    if n <= 0:
        return []
    if n < x:
        return [n]
    if n % x == 0:
        return [x] * (n // x)
    m = n // x + 1
    base, extra = divmod(n, m)
    return [base + 1] * extra + [base] * (m - extra)


def pool_matrix(lengths: Sequence[int], x: int, L: Optional[int] = None) -> torch.Tensor:
    """[b, m_max, L] mean-pooling weights for right-padded sequences of the given lengths."""
    L = L if L is not None else max(lengths)
    groups = [group_sizes(n, x) for n in lengths]
    m = max(len(g) for g in groups)
    P = torch.zeros(len(lengths), m, L)
    for b, g in enumerate(groups):
        start = 0
        for i, size in enumerate(g):
            P[b, i, start:start + size] = 1.0 / size
            start += size
    return P


# --------------------------------------------------------------------------- building blocks

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def llama3_scaled(inv_freq: torch.Tensor, sc: dict) -> torch.Tensor:
    """Llama 3.1 frequency scaling: long wavelengths are slowed by `factor`, short ones kept,
    and the band between is interpolated linearly in original_max / wavelength."""
    factor, lo, hi = float(sc["factor"]), float(sc["low_freq_factor"]), float(sc["high_freq_factor"])
    orig = float(sc["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    smooth = (orig / wavelen - lo) / (hi - lo)
    mid = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    out = torch.where(wavelen > orig / lo, inv_freq / factor, inv_freq)
    return torch.where((wavelen <= orig / lo) & (wavelen >= orig / hi), mid, out)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float,
                 scaling: Optional[dict] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape [b, s, head_dim/2] for integer positions [b, s]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim))
    if scaling is not None:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind != "llama3":
            raise ValueError(f"rope scaling {kind!r} is not implemented (only 'llama3')")
        inv_freq = llama3_scaled(inv_freq, scaling)
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: str) -> torch.Tensor:
    """x [b, h, s, e]; cos/sin [b, s, e/2]."""
    b, h, s, e = x.shape
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    if layout == "meta":
        xp = x.reshape(b, h, s, e // 2, 2)
        x0, x1 = xp[..., 0], xp[..., 1]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).reshape(b, h, s, e)
    if layout == "hf":
        x0, x1 = x[..., : e // 2], x[..., e // 2:]
        return torch.cat((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    raise ValueError(f"unknown rope layout {layout!r}")


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.n_heads, self.n_kv, self.e = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)

    def project_kv(self, x: torch.Tensor, pos: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        b, s, _ = x.shape
        k = self.wk(x).view(b, s, self.n_kv, self.e).transpose(1, 2)
        v = self.wv(x).view(b, s, self.n_kv, self.e).transpose(1, 2)
        cos, sin = rope_cos_sin(pos, self.e, self.cfg.rope_theta, self.cfg.rope_scaling)
        return apply_rope(k, cos, sin, self.cfg.rope_layout), v

    def attend(self, xq: torch.Tensor, q_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias: Optional[torch.Tensor]) -> torch.Tensor:
        """xq [b, s, d] queries; k/v [b, n_kv, t, e] (already rotated); bias broadcastable to [b, h, s, t]."""
        b, s, _ = xq.shape
        q = self.wq(xq).view(b, s, self.n_heads, self.e).transpose(1, 2)
        cos, sin = rope_cos_sin(q_pos, self.e, self.cfg.rope_theta, self.cfg.rope_scaling)
        q = apply_rope(q, cos, sin, self.cfg.rope_layout)
        rep = self.n_heads // self.n_kv
        if rep > 1:  # query head j reads kv head j // rep (= repeat_interleave(rep, dim=1), written
            # as expand + reshape because torch 1.13's ONNX export of repeat_interleave mixes up axes)
            t = k.shape[2]
            k = k[:, :, None].expand(b, self.n_kv, rep, t, self.e).reshape(b, self.n_heads, t, self.e)
            v = v[:, :, None].expand(b, self.n_kv, rep, t, self.e).reshape(b, self.n_heads, t, self.e)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.e))
        if bias is not None:
            scores = scores + bias
        out = torch.matmul(torch.softmax(scores.float(), dim=-1).type_as(q), v)
        return self.wo(out.transpose(1, 2).reshape(b, s, self.n_heads * self.e))


class FeedForward(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)  # gate
        self.w2 = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)  # down
        self.w3 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)  # up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)


NEG = -1e9  # additive mask value; finite so fully masked padding rows stay NaN-free


# --------------------------------------------------------------------------- decoder

class Decoder(nn.Module):
    """Llama-style causal LM that reads input embeddings, with an optional KV cache."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = None if cfg.tie_embeddings else nn.Linear(cfg.dim, cfg.vocab_size, bias=False)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.tok_embeddings(input_ids)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)
        return F.linear(h, self.tok_embeddings.weight) if self.output is None else self.output(h)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None,
                past: Optional[List[Tuple[torch.Tensor, torch.Tensor]]] = None,
                return_hidden: bool = False):
        """inputs_embeds [b, s, d]; attention_mask [b, past+s] (1 = attend); position_ids [b, s].

        Returns (logits [b, s, vocab], presents) or (hidden, presents) when return_hidden.
        """
        b, s, _ = inputs_embeds.shape
        past_len = 0 if past is None else past[0][0].shape[2]
        t = past_len + s
        if position_ids is None:
            position_ids = torch.arange(past_len, t, device=inputs_embeds.device).unsqueeze(0).expand(b, s)
        # causal: query i (absolute past_len+i) sees keys j <= past_len+i
        qi = torch.arange(s, device=inputs_embeds.device).unsqueeze(1) + past_len
        kj = torch.arange(t, device=inputs_embeds.device).unsqueeze(0)
        bias = torch.where(kj <= qi, 0.0, NEG).to(inputs_embeds.dtype)[None, None]
        if attention_mask is not None:
            bias = bias + ((1.0 - attention_mask[:, None, None, :].to(inputs_embeds.dtype)) * NEG)
        h = inputs_embeds
        presents = []
        for i, layer in enumerate(self.layers):
            x = layer.attention_norm(h)
            k, v = layer.attention.project_kv(x, position_ids)
            if past is not None:
                k = torch.cat([past[i][0], k], dim=2)
                v = torch.cat([past[i][1], v], dim=2)
            presents.append((k, v))
            h = h + layer.attention.attend(x, position_ids, k, v, bias)
            h = h + layer.feed_forward(layer.ffn_norm(h))
        return (h if return_hidden else self.logits(h)), presents


# --------------------------------------------------------------------------- encoder

class Bridge(nn.Module):
    """The projector: Linear(dim -> hidden) then Linear(hidden -> out), no bias, no activation."""

    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        self.layer1 = nn.Linear(dim, hidden, bias=False)
        self.layer2 = nn.Linear(hidden, out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(x))


class ArcEncoder(nn.Module):
    """Bidirectional transformer whose last layer pools queries ("mean pooled queries").

    No final norm: the output is the residual stream after the last layer, then the bridge.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.rec_tok = nn.Parameter(torch.zeros(cfg.n_decoders, cfg.dim))
        self.cont_tok = nn.Parameter(torch.zeros(cfg.n_decoders, cfg.dim))
        self.bridges = nn.ModuleList([Bridge(cfg.dim, cfg.proj_hidden, cfg.out_dim) for _ in range(cfg.n_decoders)])

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """input_ids [b, L], attention_mask [b, L], pool [b, m, L] -> pooled residual [b, m, dim]."""
        b, L = input_ids.shape
        m = pool.shape[1]
        h = self.tok_embeddings(input_ids)
        key_bias = ((1.0 - attention_mask.to(h.dtype)) * NEG)[:, None, None, :]
        k_pos = torch.arange(L, device=input_ids.device).unsqueeze(0).expand(b, L)
        q_pos = torch.arange(m, device=input_ids.device).unsqueeze(0).expand(b, m)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer.attention_norm(h)
            k, v = layer.attention.project_kv(x, k_pos)
            if i < last:
                h = h + layer.attention.attend(x, k_pos, k, v, key_bias)
            else:
                # queries are group means of the residual BEFORE the norm; the pooled rows
                # take positions 0..m-1 and are the residual of this last layer
                pooled = torch.matmul(pool, h)
                h = pooled + layer.attention.attend(layer.attention_norm(pooled), q_pos, k, v, key_bias)
            h = h + layer.feed_forward(layer.ffn_norm(h))
        return h

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool: torch.Tensor,
                decoder_index: int = 0) -> torch.Tensor:
        return self.bridges[decoder_index](self.hidden(input_ids, attention_mask, pool))

    def cont(self, decoder_index: int = 0) -> torch.Tensor:
        return self.bridges[decoder_index](self.cont_tok[decoder_index])

    def rec(self, decoder_index: int = 0) -> torch.Tensor:
        return self.bridges[decoder_index](self.rec_tok[decoder_index])

    @torch.no_grad()
    def init_from_decoder(self, dec: Decoder) -> None:
        """Start from the decoder's embedding table and first layers (paper: encoder from an LM)."""
        self.tok_embeddings.weight.copy_(dec.tok_embeddings.weight)
        for i, layer in enumerate(self.layers):
            layer.load_state_dict(dec.layers[i].state_dict())


def encode_documents(enc: ArcEncoder, docs: Sequence[Sequence[int]], decoder_index: int = 0) -> List[torch.Tensor]:
    """Encode token lists one batch: returns per-document [m_i, out_dim] (without <Cont>)."""
    lengths = [len(d) for d in docs]
    L = max(lengths)
    ids = torch.zeros(len(docs), L, dtype=torch.long)
    mask = torch.zeros(len(docs), L, dtype=torch.long)
    for i, d in enumerate(docs):
        ids[i, : len(d)] = torch.tensor(d, dtype=torch.long)
        mask[i, : len(d)] = 1
    dev = enc.tok_embeddings.weight.device
    out = enc(ids.to(dev), mask.to(dev), pool_matrix(lengths, enc.cfg.pooling_factor, L).to(dev), decoder_index)
    return [out[i, : len(group_sizes(n, enc.cfg.pooling_factor))] for i, n in enumerate(lengths)]
