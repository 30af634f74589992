"""Pooling groups: the rule written out independently from the description in the docs."""
import unittest

import numpy as np
import torch

from tools.tests import helpers
from model import ArcEncoder, EncoderConfig, encode_documents, group_sizes, pool_matrix


def expected_groups(L, x):
    # docs/DESIGN.md: L < x: one group of L. x | L: L/x groups of x. Otherwise floor(L/x)+1 groups
    # of near-equal size (differ by at most one), larger groups first.
    if L < x:
        return [L]
    if L % x == 0:
        return [x] * (L // x)
    m = L // x + 1
    sizes = [0] * m
    for t in range(L):  # deal tokens round-robin: sizes end up near-equal, earliest groups larger
        sizes[t % m] += 1
    return sizes


class GroupSizesTest(unittest.TestCase):
    def test_rule_for_lengths_1_to_40(self):
        for x in (4, 8):
            for L in range(1, 41):
                with self.subTest(x=x, L=L):
                    g = group_sizes(L, x)
                    self.assertEqual(g, expected_groups(L, x))
                    self.assertEqual(sum(g), L)

    def test_documented_examples(self):
        self.assertEqual(group_sizes(17, 4), [4, 4, 3, 3, 3])
        self.assertEqual(group_sizes(17, 8), [6, 6, 5])
        self.assertEqual(group_sizes(100, 8), [8] * 9 + [7] * 4)
        self.assertEqual(group_sizes(3, 4), [3])
        self.assertEqual(group_sizes(16, 4), [4, 4, 4, 4])

    def test_pool_matrix_rows(self):
        P = pool_matrix([17, 5], 4, 20)
        self.assertEqual(tuple(P.shape), (2, 5, 20))
        np.testing.assert_allclose(P[0].sum(-1).numpy(), np.ones(5), rtol=1e-6)
        self.assertEqual(P[1, 2:].abs().sum().item(), 0.0)  # padded groups are all-zero rows
        self.assertEqual(P[0, :, 17:].abs().sum().item(), 0.0)  # padding tokens get no weight
        self.assertAlmostEqual(P[0, 4, 14].item(), 1 / 3, places=6)

    @helpers.needs_ort
    def test_exported_encoder_pools_every_length(self):
        # one padded batch of lengths 1..40 through ONNX equals per-document torch encoding
        import tempfile, os
        import export
        cfg = EncoderConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, n_kv_heads=1, head_dim=8, hidden_dim=32,
                            pooling_factor=8, proj_hidden=8, out_dim=12)
        enc = helpers.randomize(ArcEncoder(cfg), 3, 0.3)
        g = torch.Generator().manual_seed(5)
        docs = [torch.randint(0, 50, (L,), generator=g).tolist() for L in range(1, 41)]
        with tempfile.TemporaryDirectory() as d, torch.no_grad():
            path = os.path.join(d, "encoder.onnx")
            export.export_encoder(path, cfg, export.module_weights(enc))
            out = helpers.ort_node.run_onnx([(path, helpers.encoder_feeds(docs, 8))])[0]["embeddings"]
            for i, doc in enumerate(docs):
                ref = encode_documents(enc, [doc])[0].numpy()
                self.assertEqual(ref.shape[0], len(expected_groups(len(doc), 8)))
                np.testing.assert_allclose(out[i, :ref.shape[0]], ref, atol=1e-5, err_msg=f"L={len(doc)}")


if __name__ == "__main__":
    unittest.main()
