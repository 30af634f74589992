import json
import os
import struct
import tempfile
import unittest

import torch

from tools.tests import helpers  # noqa: F401  (sys.path + threads)
import safetensors_io as st


class SafetensorsTest(unittest.TestCase):
    def test_round_trip_every_dtype(self):
        tensors = {
            "f32": torch.randn(3, 5), "f16": torch.randn(4).half(), "bf16": torch.randn(2, 3).bfloat16(),
            "i64": torch.arange(7), "i8": torch.tensor([-3, 4], dtype=torch.int8), "scalar": torch.tensor(2.5),
            "empty": torch.zeros(0, 4),
        }
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.safetensors")
            st.save_file(p, tensors, {"format": "pt"})
            f = st.SafetensorsFile(p)
            self.assertEqual(f.metadata, {"format": "pt"})
            self.assertEqual(f.keys(), sorted(tensors))
            for k, v in tensors.items():
                got = f.get(k)
                self.assertEqual(got.dtype, v.dtype, k)
                self.assertEqual(list(got.shape), list(v.shape), k)
                self.assertTrue(torch.equal(got, v), k)
            with open(p, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
            self.assertEqual(n % 8, 0, "header is padded to 8 bytes")

    def test_layout_matches_the_format(self):
        # hand-check the bytes: header JSON offsets point at little-endian data
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.safetensors")
            st.save_file(p, {"b": torch.tensor([1.0, 2.0]), "a": torch.tensor([3], dtype=torch.int64)})
            with open(p, "rb") as fh:
                raw = fh.read()
            n = struct.unpack("<Q", raw[:8])[0]
            header = json.loads(raw[8:8 + n])
            self.assertEqual(header["a"], {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]})
            self.assertEqual(header["b"], {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]})
            self.assertEqual(raw[8 + n:8 + n + 8], struct.pack("<q", 3))
            self.assertEqual(raw[8 + n + 8:], struct.pack("<2f", 1.0, 2.0))

    def test_corrupt_files_are_refused(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "bad.safetensors")
            with open(p, "wb") as f:
                f.write(struct.pack("<Q", 10 ** 12) + b"{}")
            with self.assertRaises(st.SafetensorsError):
                st.SafetensorsFile(p)
            header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}).encode()
            with open(p, "wb") as f:
                f.write(struct.pack("<Q", len(header)) + header + b"\0" * 12)
            with self.assertRaisesRegex(st.SafetensorsError, "inconsistent"):
                st.SafetensorsFile(p)

    def test_sharded_folder(self):
        with tempfile.TemporaryDirectory() as d:
            st.save_file(os.path.join(d, "model-00001-of-00002.safetensors"), {"x": torch.ones(2)})
            st.save_file(os.path.join(d, "model-00002-of-00002.safetensors"), {"y": torch.zeros(3)})
            with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {}, "weight_map": {"x": "model-00001-of-00002.safetensors",
                                                          "y": "model-00002-of-00002.safetensors"}}, f)
            ck = st.open_checkpoint(d)
            self.assertEqual(ck.keys(), ["x", "y"])
            self.assertTrue(torch.equal(ck.get("y"), torch.zeros(3)))
            with self.assertRaises(KeyError):
                ck.get("z")

    def test_reads_the_kyutai_fixture(self):
        path = os.path.join(helpers.KYUTAI_TINY, "ckpt", "model.safetensors")
        if not os.path.exists(path):
            self.skipTest(f"{path} absent (../shared not beside the clone)")
        f = st.SafetensorsFile(path)
        self.assertEqual(f.shape("embedder.tok_embeddings.weight"), [300, 64])
        self.assertEqual(f.get("bridge_module.1.layer2.weight").shape, (96, 48))


if __name__ == "__main__":
    unittest.main()
