"""Hugging Face Llama/Mistral folders -> decoder.onnx + embed.onnx, checked against an independent
float64 numpy forward written from the Hugging Face conventions (rotate_half RoPE, repeat_kv)."""
import json
import math
import os
import shutil
import tempfile
import unittest

import numpy as np
import torch

from tools.tests import helpers
from tools.tests.test_convert_kyutai import write_kyutai
import convert_kyutai
import import_decoder
import safetensors_io as st
from model import ArcEncoder, EncoderConfig, llama3_scaled

TOKENIZER = os.path.join(helpers.REPO, "test", "fixtures", "tiny-arc", "tokenizer.json")
V, D, LAYERS, H, KV, HD, FF = 64, 32, 2, 4, 2, 8, 48


def inv_freq_reference(hd, theta, scaling):
    out = []
    for i in range(0, hd, 2):
        f = 1.0 / theta ** (i / hd)
        if scaling:
            factor, lo, hi = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
            orig = scaling["original_max_position_embeddings"]
            wl = 2 * math.pi / f
            if wl < orig / hi:
                pass
            elif wl > orig / lo:
                f = f / factor
            else:
                s = (orig / wl - lo) / (hi - lo)
                f = (1 - s) * f / factor + s * f
        out.append(f)
    return np.array(out)


def hf_forward(W, c, ids):
    """Causal LM logits [s, vocab] for one sequence, float64, HF naming and conventions."""
    hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    nh, nkv, eps = c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    g = lambda k: W[k].astype(np.float64)  # noqa: E731
    rms = lambda x, w: x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w  # noqa: E731
    s = len(ids)
    x = g("model.embed_tokens.weight")[ids]
    freqs = np.outer(np.arange(s), inv_freq_reference(hd, c["rope_theta"], c.get("rope_scaling")))
    cos, sin = np.cos(np.concatenate([freqs, freqs], -1)), np.sin(np.concatenate([freqs, freqs], -1))

    def rope(t):  # t [heads, s, hd]
        rot = np.concatenate([-t[..., hd // 2:], t[..., :hd // 2]], -1)
        return t * cos + rot * sin

    causal = np.triu(np.full((s, s), -np.inf), 1)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, g(p + "input_layernorm.weight"))
        q = rope((h @ g(p + "self_attn.q_proj.weight").T).reshape(s, nh, hd).transpose(1, 0, 2))
        k = rope((h @ g(p + "self_attn.k_proj.weight").T).reshape(s, nkv, hd).transpose(1, 0, 2))
        v = (h @ g(p + "self_attn.v_proj.weight").T).reshape(s, nkv, hd).transpose(1, 0, 2)
        k, v = k[np.arange(nh) // (nh // nkv)], v[np.arange(nh) // (nh // nkv)]
        a = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + causal
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        x = x + (a @ v).transpose(1, 0, 2).reshape(s, nh * hd) @ g(p + "self_attn.o_proj.weight").T
        h = rms(x, g(p + "post_attention_layernorm.weight"))
        gate = h @ g(p + "mlp.gate_proj.weight").T
        x = x + ((gate / (1 + np.exp(-gate))) * (h @ g(p + "mlp.up_proj.weight").T)) @ g(p + "mlp.down_proj.weight").T
    head = g("model.embed_tokens.weight") if c.get("tie_word_embeddings") else g("lm_head.weight")
    return rms(x, g("model.norm.weight")) @ head.T


def write_hf(d, config, seed, sharded=True):
    """Random HF checkpoint; the first shard in bf16 (as Llama 3.1 ships), the second in fp32."""
    rng = np.random.default_rng(seed)
    W = {"model.embed_tokens.weight": rng.normal(0, 0.5, (V, D)), "model.norm.weight": 1 + 0.1 * rng.normal(size=D)}
    if not config.get("tie_word_embeddings"):
        W["lm_head.weight"] = rng.normal(0, 0.3, (V, D))
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for name, shape in (("self_attn.q_proj", (H * HD, D)), ("self_attn.k_proj", (KV * HD, D)),
                            ("self_attn.v_proj", (KV * HD, D)), ("self_attn.o_proj", (D, H * HD)),
                            ("mlp.gate_proj", (FF, D)), ("mlp.up_proj", (FF, D)), ("mlp.down_proj", (D, FF))):
            W[p + name + ".weight"] = rng.normal(0, 0.25, shape)
        W[p + "input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=D)
        W[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.normal(size=D)
    tensors = {k: torch.tensor(v, dtype=torch.float32) for k, v in W.items()}
    names = sorted(tensors)
    first = set(names[: len(names) // 2]) if sharded else set()
    for k in first:
        tensors[k] = tensors[k].bfloat16()
    W = {k: t.float().numpy() for k, t in tensors.items()}  # what the file really holds
    if sharded:
        shard_of = {k: "model-00001-of-00002.safetensors" if k in first else "model-00002-of-00002.safetensors" for k in names}
        for shard in sorted(set(shard_of.values())):
            st.save_file(os.path.join(d, shard), {k: tensors[k] for k in names if shard_of[k] == shard}, {"format": "pt"})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": shard_of}, f)
    else:
        st.save_file(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
    return W


def llama_config(**kw):
    c = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": V, "hidden_size": D,
         "intermediate_size": FF, "num_hidden_layers": LAYERS, "num_attention_heads": H, "num_key_value_heads": KV,
         "head_dim": HD, "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
         "max_position_embeddings": 256, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": [2, 0],
         "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 64}}
    c.update(kw)
    return c


def encoder_package(d, out_dim, tokenizer=TOKENIZER):
    cfg = EncoderConfig(vocab_size=V, dim=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8, hidden_dim=16,
                        pooling_factor=4, proj_hidden=8, out_dim=out_dim)
    ck = os.path.join(d, "enc-ckpt")
    os.makedirs(ck)
    write_kyutai(ck, helpers.randomize(ArcEncoder(cfg), 0), 0, single=True)
    convert_kyutai.convert(ck, 0, os.path.join(d, "pkg"), tokenizer=tokenizer)
    return os.path.join(d, "pkg")


class RopeScalingTest(unittest.TestCase):
    def test_llama3_scaling_matches_the_published_rule(self):
        sc = llama_config()["rope_scaling"]
        base = 1.0 / (10000.0 ** (torch.arange(0, 16, 2, dtype=torch.float64) / 16))
        got = llama3_scaled(base, sc).numpy()
        np.testing.assert_allclose(got, inv_freq_reference(16, 10000.0, sc), rtol=1e-12)
        self.assertEqual(got[0], base[0].item())  # short wavelength: unchanged
        self.assertAlmostEqual(got[-1], base[-1].item() / 8, places=15)  # long: divided by factor
        self.assertTrue(((got > base.numpy() / 8 - 1e-15) & (got <= base.numpy())).all())


class ImportDecoderTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_config_mapping(self):
        hf = os.path.join(self.tmp, "hf")
        os.makedirs(hf)
        write_hf(hf, llama_config(), 0, sharded=False)
        cfg = import_decoder.read_config(hf)
        self.assertEqual((cfg.rope_layout, cfg.n_kv_heads, cfg.head_dim, cfg.tie_embeddings), ("hf", KV, HD, False))
        self.assertEqual(cfg.rope_scaling["factor"], 8.0)
        self.assertEqual(import_decoder.special_ids(hf), (1, 2))
        m = llama_config(model_type="mistral", sliding_window=32, rope_scaling=None, tie_word_embeddings=True)
        with open(os.path.join(hf, "config.json"), "w") as f:
            json.dump(m, f)
        cfg = import_decoder.read_config(hf)
        self.assertEqual((cfg.context_length, cfg.rope_scaling, cfg.tie_embeddings), (32, None, True))
        for bad, msg in (({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "yarn"),
                         ({"model_type": "qwen2"}, "qwen2"), ({"attention_bias": True}, "bias"),
                         ({"hidden_act": "gelu"}, "gelu")):
            with open(os.path.join(hf, "config.json"), "w") as f:
                json.dump(llama_config(**bad), f)
            with self.subTest(msg=msg), self.assertRaisesRegex(import_decoder.DecoderImportError, msg):
                import_decoder.read_config(hf)

    @helpers.needs_ort
    def test_llama_sharded_bf16_matches_independent_reference(self):
        hf = os.path.join(self.tmp, "Llama-Test")
        os.makedirs(hf)
        c = llama_config()
        W = write_hf(hf, c, 1)
        shutil.copyfile(TOKENIZER, os.path.join(hf, "tokenizer.json"))
        pkg = encoder_package(self.tmp, D)
        import_decoder.main(["--hf", hf, "--out", pkg])
        with open(os.path.join(pkg, "arc-model.json")) as f:
            m = json.load(f)
        dm = m["decoder"]
        self.assertEqual((dm["hiddenSize"], dm["numKvHeads"], dm["headDim"], dm["vocabSize"]), (D, KV, HD, V))
        self.assertEqual((dm["bosTokenId"], dm["eosTokenId"], dm["contextLength"]), (1, 2, 256))
        self.assertEqual(dm["tokenizer"], "tokenizer.json")  # same file as the encoder's: shared
        self.assertIsNotNone(m["encoder"])
        ids = np.array([[1, 5, 9, 33, 2, 60, 17, 40, 41, 7]], np.int64)
        s = ids.shape[1]
        ref = hf_forward(W, c, ids[0])
        emb = helpers.ort_node.run_onnx([(os.path.join(pkg, "embed.onnx"), {"input_ids": ids})])[0]["inputs_embeds"]
        np.testing.assert_allclose(emb[0], W["model.embed_tokens.weight"][ids[0]], atol=1e-7)
        dec = os.path.join(pkg, "decoder.onnx")
        feeds = lambda e, lo, hi, past: dict(inputs_embeds=e, attention_mask=np.ones((1, hi), np.int64),  # noqa: E731
                                            position_ids=np.arange(lo, hi)[None].astype(np.int64), **past)
        full, pre = helpers.ort_node.run_onnx([(dec, feeds(emb, 0, s, helpers.empty_past(LAYERS, 1, KV, HD))),
                                               (dec, feeds(emb[:, :7], 0, 7, helpers.empty_past(LAYERS, 1, KV, HD)))])
        past = {f"past_key_values.{i}.{k}": pre[f"present.{i}.{k}"] for i in range(LAYERS) for k in ("key", "value")}
        step = helpers.ort_node.run_onnx([(dec, feeds(emb[:, 7:], 7, s, past))])[0]
        self.assertLess(np.abs(full["logits"][0] - ref).max(), 1e-4)
        self.assertLess(np.abs(step["logits"][0] - ref[7:]).max(), 1e-4)
        # the scaling is really applied: without it the reference moves far more than the tolerance
        plain = hf_forward(W, dict(c, rope_scaling=None), ids[0])
        self.assertGreater(np.abs(plain - ref).max(), 1e-2)

    @helpers.needs_ort
    def test_mistral_tied_with_its_own_tokenizer(self):
        hf = os.path.join(self.tmp, "Mistral-Test")
        os.makedirs(hf)
        c = llama_config(model_type="mistral", rope_scaling=None, tie_word_embeddings=True, sliding_window=4096,
                         rope_theta=1e6, eos_token_id=2)
        W = write_hf(hf, c, 2, sharded=False)
        with open(TOKENIZER) as f:
            tok = json.load(f)
        tok["added_tokens"][0]["content"] = "<unk>"  # a different tokenizer file than the encoder's
        with open(os.path.join(hf, "tokenizer.json"), "w") as f:
            json.dump(tok, f)
        pkg = encoder_package(self.tmp, D)
        m = import_decoder.import_decoder(hf, pkg, context_length=128)
        self.assertEqual(m["decoder"]["tokenizer"], "decoder-tokenizer.json")
        self.assertEqual(m["encoder"]["tokenizer"], "tokenizer.json")
        self.assertEqual(m["decoder"]["contextLength"], 128)
        ids = np.array([[1, 4, 8, 15, 16, 23, 42]], np.int64)
        emb = helpers.ort_node.run_onnx([(os.path.join(pkg, "embed.onnx"), {"input_ids": ids})])[0]["inputs_embeds"]
        out = helpers.ort_node.run_onnx([(os.path.join(pkg, "decoder.onnx"), dict(
            inputs_embeds=emb, attention_mask=np.ones((1, 7), np.int64), position_ids=np.arange(7)[None].astype(np.int64),
            **helpers.empty_past(LAYERS, 1, KV, HD)))])[0]
        self.assertLess(np.abs(out["logits"][0] - hf_forward(W, c, ids[0])).max(), 1e-4)

    def test_width_mismatch_and_missing_package_are_refused(self):
        hf = os.path.join(self.tmp, "hf")
        os.makedirs(hf)
        write_hf(hf, llama_config(), 3, sharded=False)
        shutil.copyfile(TOKENIZER, os.path.join(hf, "tokenizer.json"))
        with self.assertRaisesRegex(import_decoder.DecoderImportError, "convert an encoder"):
            import_decoder.import_decoder(hf, os.path.join(self.tmp, "nothing"))
        pkg = encoder_package(self.tmp, D + 8)
        with self.assertRaisesRegex(import_decoder.DecoderImportError, "width 40"):
            import_decoder.import_decoder(hf, pkg)


if __name__ == "__main__":
    unittest.main()


class EmbedOnlyTest(unittest.TestCase):
    @helpers.needs_ort
    def test_embed_only_leaves_decoder_onnx_to_another_tool(self):
        with tempfile.TemporaryDirectory() as tmp:
            hf = os.path.join(tmp, "hf")
            os.makedirs(hf)
            W = write_hf(hf, llama_config(), 4, sharded=False)
            shutil.copyfile(TOKENIZER, os.path.join(hf, "tokenizer.json"))
            pkg = encoder_package(tmp, D)
            m = import_decoder.import_decoder(hf, pkg, embed_only=True)
            self.assertFalse(os.path.exists(os.path.join(pkg, "decoder.onnx")))
            self.assertEqual(m["decoder"]["file"], "decoder.onnx")
            ids = np.array([[3, 1, 4, 1, 5]], np.int64)
            emb = helpers.ort_node.run_onnx([(os.path.join(pkg, "embed.onnx"), {"input_ids": ids})])[0]["inputs_embeds"]
            np.testing.assert_array_equal(emb[0], W["model.embed_tokens.weight"][ids[0]])
