"""export_hf_llama: the bundled decoder written as a Hugging Face Llama folder reads back
through tools/import_decoder.py (rotate-half layout) with the same logits as the package's
own decoder (meta layout)."""
from __future__ import annotations

import json
import os
import tempfile
import unittest

import torch

from tools.tests.helpers import REPO  # noqa: F401  (puts tools/ on sys.path)
import export_hf_llama  # noqa: E402
import import_decoder  # noqa: E402
import safetensors_io  # noqa: E402
from model import Decoder, DecoderConfig  # noqa: E402

PACKAGE = os.path.join(REPO, "models", "arc-tiny-code")


@unittest.skipUnless(os.path.exists(os.path.join(PACKAGE, "weights.safetensors")), "bundled weights missing")
class ExportHfLlamaTest(unittest.TestCase):
    def test_round_trip_logits(self):
        with open(os.path.join(PACKAGE, "weights.config.json"), encoding="utf-8") as f:
            cfg = DecoderConfig(**json.load(f)["decoder"])
        ref = Decoder(cfg).eval()
        ckpt = safetensors_io.open_checkpoint(os.path.join(PACKAGE, "weights.safetensors"))
        ref.load_state_dict({k: ckpt.get("decoder." + k) for k in ref.state_dict()})
        with tempfile.TemporaryDirectory() as out:
            config = export_hf_llama.export_hf(PACKAGE, out)
            self.assertEqual(config["model_type"], "llama")
            for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
                self.assertTrue(os.path.exists(os.path.join(out, name)), name)
            hf = import_decoder.load_decoder(out)
        self.assertEqual(hf.cfg.rope_layout, "hf")
        torch.manual_seed(0)
        embeds = torch.randn(1, 40, cfg.dim) * 0.05
        with torch.no_grad():
            a, _ = ref(embeds)
            b, _ = hf(embeds)
        self.assertLess(float((a - b).abs().max() / a.abs().max()), 1e-5)
        self.assertTrue(torch.equal(a.argmax(-1), b.argmax(-1)))


if __name__ == "__main__":
    unittest.main()
