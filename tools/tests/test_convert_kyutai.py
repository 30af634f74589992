"""Kyutai checkpoint conversion: the shared kyutai-tiny fixture, the single layout, random configs."""
import json
import os
import tempfile
import unittest

import numpy as np
import torch

from tools.tests import helpers
import convert_kyutai
import safetensors_io as st
from model import ArcEncoder, EncoderConfig, encode_documents

CKPT = os.path.join(helpers.KYUTAI_TINY, "ckpt")
REFERENCE = os.path.join(helpers.KYUTAI_TINY, "reference.json")
needs_shared = unittest.skipUnless(os.path.exists(REFERENCE), f"{REFERENCE} absent (../shared not beside the clone)")


def rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def write_kyutai(d, enc: ArcEncoder, n_truncated: int, single: bool, extra_layers: int = 0):
    """Write a module in Kyutai's released on-disk format (config.json + model.safetensors)."""
    cfg = enc.cfg
    sd = enc.state_dict()
    t = {"embedder.tok_embeddings.weight": sd["tok_embeddings.weight"]}
    for k, v in sd.items():
        if k.startswith("layers."):
            t["embedder." + k] = v
    for i in range(cfg.n_layers, cfg.n_layers + extra_layers):  # stray truncated layers must be ignored
        for k, v in sd.items():
            if k.startswith("layers.0."):
                t["embedder." + k.replace("layers.0.", f"layers.{i}.")] = torch.full_like(v, 1e3)
    for dd in range(cfg.n_decoders):
        t[f"embedder.rec_tok.{dd}.weight"] = sd["rec_tok"][dd:dd + 1]
        t[f"embedder.cont_tok.{dd}.weight"] = sd["cont_tok"][dd:dd + 1]
        for layer in ("layer1", "layer2"):
            name = f"bridge_module.{layer}.weight" if single else f"bridge_module.{dd}.{layer}.weight"
            t[name] = sd[f"bridges.{dd}.{layer}.weight"]
    st.save_file(os.path.join(d, "model.safetensors"), t)
    config = {
        "bridge_args": {"bridge_type": "mlp" if single else "multi_module", "hidden_dim": cfg.proj_hidden,
                        "in_dim": cfg.dim, "out_dim": cfg.out_dim},
        "embedder": None,
        "embedder_args": {"causal_embedder": False, "compress_rates": [-cfg.pooling_factor], "cont_tok": True,
                          "memory_tokens": 0, "n_truncated_layers": n_truncated,
                          "pooling_module": {"pool_type": "mean_pooled_queries", "where": "before"},
                          "rec_tok": True, "train_embedding_mtx": True, "trained_layers": 3},
        "empty_init": cfg.n_decoders, "llms": [],
        "model_args": {"_sliding_window": None, "dim": cfg.dim, "head_dim": cfg.head_dim, "hidden_dim": cfg.hidden_dim,
                       "max_batch_size": 1, "model_type": "transformer", "n_heads": cfg.n_heads,
                       "n_kv_heads": cfg.n_kv_heads, "n_layers": cfg.n_layers + n_truncated,
                       "non_parametric_norm": False, "norm_eps": repr(cfg.norm_eps), "rope_theta": cfg.rope_theta,
                       "sliding_window": None, "vocab_size": cfg.vocab_size},
    }
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def reference_cases(ref, d):
    return [(c["token_ids"], c["embeddings"][str(d)]) for c in ref["cases"]]


@needs_shared
class KyutaiTinyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(REFERENCE) as f:
            cls.ref = json.load(f)

    def test_config_reading(self):
        cfg, info = convert_kyutai.read_config(CKPT)
        self.assertEqual((cfg.n_layers, cfg.pooling_factor, cfg.n_decoders, cfg.out_dim), (2, 4, 2, 96))
        self.assertEqual(cfg.norm_eps, 1e-5)  # from the string "1e-05"
        self.assertEqual(cfg.rope_theta, 500000.0)
        self.assertIsNone(cfg.rope_scaling)
        self.assertEqual(info["layout"], "multi")

    def test_python_path_reproduces_reference(self):
        enc = convert_kyutai.load_encoder(CKPT)
        with torch.no_grad():
            for d in (0, 1):
                for ids, emb in reference_cases(self.ref, d):
                    self.assertLessEqual(rel(encode_documents(enc, [ids], d)[0], emb), 1e-5)
                self.assertLessEqual(rel(enc.cont(d), self.ref["cont"][str(d)]), 1e-5)

    @helpers.needs_ort
    def test_converted_onnx_reproduces_reference_for_both_decoders(self):
        docs = [c["token_ids"] for c in self.ref["cases"]]
        with tempfile.TemporaryDirectory() as tmp:
            runs = []
            for d in (0, 1):
                out = os.path.join(tmp, str(d))
                m = convert_kyutai.convert(CKPT, d, out, max_chunk_tokens=64, name=f"kyutai-tiny-{d}",
                                           license_text="test fixture (random weights)")
                self.assertIsNone(m["decoder"])
                self.assertIsNone(m["encoder"]["tokenizer"])
                self.assertEqual((m["encoder"]["poolingFactor"], m["encoder"]["decoderIndex"]), (4, d))
                # the committed packages are what this conversion writes
                committed = os.path.join(helpers.REPO, "test", "fixtures", f"kyutai-tiny-pkg-{d}")
                for f in ("encoder.onnx", "arc-model.json"):
                    with open(os.path.join(out, f), "rb") as a, open(os.path.join(committed, f), "rb") as b:
                        self.assertEqual(a.read(), b.read(), f"{committed}/{f} is stale")
                runs.append((os.path.join(out, "encoder.onnx"), helpers.encoder_feeds(docs, 4)))
                runs += [(os.path.join(out, "encoder.onnx"), helpers.encoder_feeds([doc], 4)) for doc in docs]
            res = helpers.ort_node.run_onnx(runs)
        worst = 0.0
        for d in (0, 1):
            batch, singles = res[d * 5], res[d * 5 + 1:d * 5 + 5]
            for i, (ids, emb) in enumerate(reference_cases(self.ref, d)):
                m = len(emb)
                worst = max(worst, rel(singles[i]["embeddings"][0], emb), rel(batch["embeddings"][i, :m], emb))
            worst = max(worst, rel(batch["cont_embedding"][0, 0], self.ref["cont"][str(d)]))
        self.assertLessEqual(worst, 1e-5)

    @helpers.needs_ort
    def test_single_decoder_layout_converts(self):
        src = st.SafetensorsFile(os.path.join(CKPT, "model.safetensors"))
        with open(os.path.join(CKPT, "config.json")) as f:
            config = json.load(f)
        for d in (0, 1):
            with tempfile.TemporaryDirectory() as tmp, self.subTest(decoder=d):
                ck = os.path.join(tmp, "ARC8_Encoder_Single")
                os.makedirs(ck)
                t = {}
                for k in src.keys():
                    if k.startswith("bridge_module."):
                        idx, rest = k[len("bridge_module."):].split(".", 1)
                        if int(idx) == d:
                            t["bridge_module." + rest] = src.get(k)
                    elif k.startswith(("embedder.rec_tok.", "embedder.cont_tok.")):
                        if k.split(".")[2] == str(d):
                            t[k.replace(f".{d}.weight", ".0.weight")] = src.get(k)
                    else:
                        t[k] = src.get(k)
                self.assertIn("bridge_module.layer1.weight", t)
                st.save_file(os.path.join(ck, "model.safetensors"), t)
                cfg = dict(config, empty_init=1, bridge_args=dict(config["bridge_args"], bridge_type="mlp"))
                with open(os.path.join(ck, "config.json"), "w") as f:
                    json.dump(cfg, f)
                _, info = convert_kyutai.read_config(ck)
                self.assertEqual(info["layout"], "single")
                out = os.path.join(tmp, "pkg")
                m = convert_kyutai.convert(ck, 0, out)
                self.assertEqual(m["name"], "ARC8_Encoder_Single-decoder0")
                with self.assertRaises(convert_kyutai.ConversionError):
                    convert_kyutai.convert(ck, 1, os.path.join(tmp, "bad"))
                docs = [c["token_ids"] for c in self.ref["cases"]]
                r = helpers.ort_node.run_onnx([(os.path.join(out, "encoder.onnx"), helpers.encoder_feeds(docs, 4))])[0]
                for i, (ids, emb) in enumerate(reference_cases(self.ref, d)):
                    self.assertLessEqual(rel(r["embeddings"][i, :len(emb)], emb), 1e-5)
                self.assertLessEqual(rel(r["cont_embedding"][0, 0], self.ref["cont"][str(d)]), 1e-5)


class RandomKyutaiLayoutTest(unittest.TestCase):
    @helpers.needs_ort
    def test_pooling_8_truncation_and_stray_layers(self):
        cfg = EncoderConfig(vocab_size=90, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, head_dim=8, hidden_dim=64,
                            norm_eps=1e-6, rope_theta=20000.0, pooling_factor=8, proj_hidden=16, out_dim=40,
                            n_decoders=3)
        enc = helpers.randomize(ArcEncoder(cfg), 11, 0.3)
        g = torch.Generator().manual_seed(3)
        docs = [torch.randint(0, 90, (L,), generator=g).tolist() for L in (5, 8, 17, 30)]
        with tempfile.TemporaryDirectory() as tmp:
            ck = os.path.join(tmp, "ckpt")
            os.makedirs(ck)
            write_kyutai(ck, enc, n_truncated=2, single=False, extra_layers=1)
            got_cfg, _ = convert_kyutai.read_config(ck)
            self.assertEqual(got_cfg, cfg)
            out = os.path.join(tmp, "pkg")
            convert_kyutai.main(["--checkpoint", ck, "--decoder-index", "2", "--out", out, "--dtype", "fp32"])
            r = helpers.ort_node.run_onnx([(os.path.join(out, "encoder.onnx"), helpers.encoder_feeds(docs, 8))])[0]
        with torch.no_grad():
            for i, doc in enumerate(docs):
                ref = encode_documents(enc, [doc], 2)[0].numpy()
                self.assertLess(np.abs(r["embeddings"][i, :len(ref)] - ref).max(), 1e-4)
            self.assertLess(np.abs(r["cont_embedding"][0, 0] - enc.cont(2).numpy()).max(), 1e-5)

    def test_unsupported_configs_are_refused_clearly(self):
        cfg = EncoderConfig(vocab_size=20, dim=8, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=4, hidden_dim=8,
                            pooling_factor=4, proj_hidden=4, out_dim=6)
        enc = ArcEncoder(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            write_kyutai(tmp, enc, 0, single=True)
            path = os.path.join(tmp, "config.json")
            with open(path) as f:
                good = json.load(f)
            for patch, msg in ((("embedder_args", "compress_rates", [-4, -4]), "compress_rates"),
                               (("embedder_args", "causal_embedder", True), "causal"),
                               (("bridge_args", "bridge_type", "attention"), "bridge_type"),
                               (("model_args", "n_layers", 5), "lack layers")):
                bad = json.loads(json.dumps(good))
                bad[patch[0]][patch[1]] = patch[2]
                with open(path, "w") as f:
                    json.dump(bad, f)
                with self.subTest(msg=msg), self.assertRaisesRegex(convert_kyutai.ConversionError, msg):
                    convert_kyutai.read_config(tmp)


if __name__ == "__main__":
    unittest.main()


class StreamingMemoryTest(unittest.TestCase):
    @unittest.skipUnless(os.path.exists("/proc/self/status"), "needs Linux /proc to read peak RSS")
    def test_conversion_needs_far_less_ram_than_the_weights(self):
        import subprocess, sys
        cfg = EncoderConfig(vocab_size=8000, dim=1024, n_layers=4, n_heads=8, n_kv_heads=8, head_dim=128,
                            hidden_dim=2816, pooling_factor=8, proj_hidden=512, out_dim=1024)
        with tempfile.TemporaryDirectory() as tmp:
            enc = ArcEncoder(cfg)  # default init is fine: only memory is measured here
            write_kyutai(tmp, enc, 0, single=True)
            weights = os.path.getsize(os.path.join(tmp, "model.safetensors"))
            del enc
            # VmHWM (peak RSS of this process image); ru_maxrss would include the parent's
            # RSS at fork time
            code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import torch; "
                    "torch.set_num_threads(1); import convert_kyutai; "
                    "hwm = lambda: int([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); "
                    "base = hwm(); "
                    "convert_kyutai.convert(sys.argv[2], 0, sys.argv[3], dtype='fp32', external=True); "
                    "print(json.dumps([base, hwm()]))")
            p = subprocess.run([sys.executable, "-c", code, helpers.TOOLS, tmp, os.path.join(tmp, "pkg")],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            base, peak = json.loads(p.stdout.strip().splitlines()[-1])
            grew = (peak - base) * 1024
            self.assertGreater(weights, 200e6)
            self.assertLess(grew, 0.5 * weights, f"conversion grew RSS by {grew / 1e6:.0f} MB for {weights / 1e6:.0f} MB of weights")
            self.assertGreater(os.path.getsize(os.path.join(tmp, "pkg", "encoder.onnx.data")), weights * 0.95)
