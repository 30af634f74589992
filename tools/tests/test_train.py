"""tools/train.py's ARC batches: which tokens are supervised (real models, tiny random weights)."""
from __future__ import annotations

import unittest

import torch

from tools.tests import helpers  # noqa: F401  (puts tools/ on sys.path, one thread)
import corpus as C
import train
from model import ArcEncoder, Decoder, DecoderConfig, EncoderConfig


class _TextData:
    """Only what arc_qa_item needs of train.Data: a deterministic text -> ids map (fake tokenizer:
    one id per character; the real BPE needs the prepared corpus) and the chunk cap."""
    max_chunk = 64

    def enc(self, s: str):
        return [3 + ord(ch) % 60 for ch in s]

    def prompt_ids(self, question: str):
        return self.enc(C.QUESTION_TEMPLATE.format(question=question))


def models():
    torch.manual_seed(0)
    dcfg = DecoderConfig(vocab_size=70, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, hidden_dim=48)
    ecfg = EncoderConfig(vocab_size=70, dim=32, n_layers=1, n_heads=4, n_kv_heads=2, head_dim=8, hidden_dim=48,
                         pooling_factor=4, proj_hidden=16, out_dim=32, n_decoders=1)
    return Decoder(dcfg).eval(), ArcEncoder(ecfg).eval()


class ArcQaItemTest(unittest.TestCase):
    def setUp(self):
        self.data = _TextData()
        self.chunks = [C.Chunk("pkg/a.py", "def area(w, h):\n    return w * h\nRATE = 3\n", 1)]
        self.qs = [C.QA("params", "area", C.Q_PARAMS.format(name="area"), "w, h"),
                   C.QA("value", "RATE", C.Q_VALUE.format(name="RATE"), "3")]

    def test_several_questions_supervise_exactly_their_answers(self):
        it = train.arc_qa_item(self.data, self.chunks, self.qs)
        supervised = [t for t, m in zip(it["after"], it["loss_mask"]) if m]
        self.assertEqual(supervised, self.data.enc("w, h" + C.ANSWER_END) + self.data.enc("3" + C.ANSWER_END))
        first = self.data.prompt_ids(self.qs[0].question)
        self.assertEqual(it["after"][: len(first)], first)
        self.assertEqual(it["loss_mask"][: len(first)], [0] * len(first))

    def test_loss_mask_equals_the_suffix_form_for_one_question(self):
        dec, enc = models()
        one = train.arc_qa_item(self.data, self.chunks, self.qs[0])
        start = one["loss_mask"].index(1)
        self.assertEqual(one["loss_mask"], [0] * start + [1] * (len(one["after"]) - start))
        suffix = {k: v for k, v in one.items() if k != "loss_mask"} | {"loss_from": start}
        with torch.no_grad():
            a = train.arc_forward(dec, enc, [one])
            b = train.arc_forward(dec, enc, [suffix])
        self.assertAlmostEqual(float(a), float(b), places=6)

    def test_two_questions_loss_is_the_token_weighted_mean_of_the_answers(self):
        # Asking the second question after the first changes nothing before it (causal decoder),
        # so the first answer's summed NLL is the same as when it is asked alone.
        dec, enc = models()
        both = train.arc_qa_item(self.data, self.chunks, self.qs)
        one = train.arc_qa_item(self.data, self.chunks, self.qs[0])
        n_both, n_one = sum(both["loss_mask"]), sum(one["loss_mask"])
        only_second = dict(both, loss_mask=[m if i >= len(one["after"]) else 0 for i, m in enumerate(both["loss_mask"])])
        with torch.no_grad():
            total = float(train.arc_forward(dec, enc, [both])) * n_both
            first = float(train.arc_forward(dec, enc, [one])) * n_one
            second = float(train.arc_forward(dec, enc, [only_second])) * (n_both - n_one)
        self.assertAlmostEqual(total, first + second, places=4)

    def test_per_item_loss_weighs_each_item_equally(self):
        dec, enc = models()
        short = train.arc_qa_item(self.data, self.chunks, self.qs[1])
        long = train.arc_qa_item(self.data, self.chunks, self.qs)
        with torch.no_grad():
            a, b = float(train.arc_forward(dec, enc, [short])), float(train.arc_forward(dec, enc, [long]))
            both = float(train.arc_forward(dec, enc, [short, long], per_item=True))
            pooled = float(train.arc_forward(dec, enc, [short, long]))
        self.assertAlmostEqual(both, (a + b) / 2, places=5)
        n_s, n_l = sum(short["loss_mask"]), sum(long["loss_mask"])
        self.assertAlmostEqual(pooled, (a * n_s + b * n_l) / (n_s + n_l), places=5)


if __name__ == "__main__":
    unittest.main()


class WindowLayoutTest(unittest.TestCase):
    """Window-shaped items follow the mixed prefix layout of docs/DESIGN.md: [BOS], compressed
    chunks in document order, text chunks in document order, then the questions."""

    def setUp(self):
        self.data = _TextData()
        self.src = train.WindowSource.__new__(train.WindowSource)
        self.src.data, self.src.x = self.data, 4
        self.chunks = [C.Chunk("pkg/b.py", "def area(w, h):\n    return w * h\n", 1),
                       C.Chunk("pkg/a.py", "RATE = 3\n", 1),
                       C.Chunk("pkg/a.py", "def other(x):\n    return x\n", 5)]
        self.q = C.QA("params", "area", C.Q_PARAMS.format(name="area"), "w, h")

    def test_compressed_first_in_document_order_then_text(self):
        it = self.src.layout(self.chunks, [True, False, False], [self.q], 512)
        kinds = [k for k, _ in it["segments"]]
        self.assertEqual(kinds, ["t", "c", "c", "t"])
        self.assertEqual(it["segments"][0][1], [train.bpe.BOS])
        # a.py line 1, a.py line 5 (document order), then b.py as text
        self.assertEqual(it["segments"][1][1], self.data.enc(self.chunks[1].render()))
        self.assertEqual(it["segments"][2][1], self.data.enc(self.chunks[2].render()))
        self.assertEqual(it["segments"][3][1], self.data.enc(self.chunks[0].render()))
        self.assertEqual((it["n_text"], it["n_comp"]), (1, 2))

    def test_rank_layout_text_first_then_compressed_in_the_order_picked(self):
        # config "rank_layout" (manifest prompt.contextOrder "rank"): chunk 0 is the asked one
        self.src.rank_layout = True
        it = self.src.layout(self.chunks, [True, False, False], [self.q], 512)
        self.assertEqual([k for k, _ in it["segments"]], ["t", "t", "c", "c"])
        self.assertEqual([ids for _, ids in it["segments"][1:]],
                         [self.data.enc(c.render()) for c in self.chunks])
        # over the window, the last picked chunk no question needs goes first
        full = self.src.layout(self.chunks, [False, False, False], [self.q], 512)
        need = 1 + sum(len(ids) for k, ids in full["segments"][1:] if k == "t") + len(full["after"]) + sum(
            self.src.costs(ids)[1] for k, ids in full["segments"] if k == "c")
        small = self.src.layout(self.chunks, [False, False, False], [self.q], need - 1)
        self.assertEqual([ids for _, ids in small["segments"][1:]], [self.data.enc(c.render()) for c in self.chunks[:2]])

    def test_over_the_window_drops_chunks_no_question_needs(self):
        full = self.src.layout(self.chunks, [True, True, True], [self.q], 512)
        need = 1 + sum(len(ids) for k, ids in full["segments"][1:]) + len(full["after"])
        small = self.src.layout(self.chunks, [True, True, True], [self.q], need - 1)
        text = small["segments"][-1][1]
        # the last chunk (document order) that no question needs goes first: a.py:5
        self.assertEqual(text, self.data.enc(self.chunks[1].render()) + self.data.enc(self.chunks[0].render()))
        self.assertIsNone(self.src.layout(self.chunks, [True, True, True], [self.q], 20))

    def test_forward_reads_segments_like_the_legacy_items(self):
        dec, enc = models()
        docs = [self.data.enc(c.render()) for c in self.chunks]
        after, mask = train.qa_turns(self.data, self.q)
        legacy = {"docs": docs, "special": "cont", "before": [train.bpe.BOS], "after": after, "loss_mask": mask}
        seg = {"segments": [("t", [train.bpe.BOS])] + [("c", d) for d in docs], "special": "cont",
               "after": after, "loss_mask": mask}
        with torch.no_grad():
            self.assertAlmostEqual(float(train.arc_forward(dec, enc, [legacy])), float(train.arc_forward(dec, enc, [seg])), places=5)


class HardDistractorTest(unittest.TestCase):
    """"hard_distractors": a window item's other chunks come as a lexical ranker would put them
    beside the answer (most mentions of the asked name first), not in random order."""

    def setUp(self):
        self.data = _TextData()
        qa = {"kind": "params", "name": "area", "question": C.Q_PARAMS.format(name="area"), "answer": "w, h"}
        bodies = ["def area(w, h):\n    return w * h\n"] + [f"x{k} = {k}\n" for k in range(8)] + \
                 ["print(area(1, 2), area(3, 4))\n", "y = area(5, 6)\n", "areas = 1\n"]
        chunks = [{"body": b, "start": 1, "ids": self.data.enc(f"### pkg/m{k}.py\n" + b), "qa": [qa] if k == 0 else []}
                  for k, b in enumerate(bodies)]
        self.src = train.WindowSource(self.data, [{"package": "pkg", "path": "pkg/m.py", "chunks": chunks}])
        self.src.x = 4
        self.bodies, self.ids = bodies, [c["ids"] for c in chunks]

    def test_mentions_counts_whole_identifiers(self):
        self.assertEqual(train.mentions("print(area(1, 2), area(3, 4))", "area"), 2)
        self.assertEqual(train.mentions("areas = my_area + area_", "area"), 0)

    def test_hard_items_take_the_chunks_that_mention_the_name_first(self):
        import random
        need = sum(self.src.costs(self.ids[k])[0] for k in (0, 9, 10))  # room for exactly three chunks
        for seed in range(5):
            chunks, _, qs = self.src.pick(random.Random(seed), need, "full", 0, 1.0, 1, hard=True)
            self.assertEqual(qs[0].name, "area")
            self.assertEqual([c.body for c in chunks], [self.bodies[0], self.bodies[9], self.bodies[10]])
        easy = {tuple(c.body for c in self.src.pick(random.Random(seed), need, "full", 0, 1.0, 1)[0]) for seed in range(5)}
        self.assertNotEqual(easy, {(self.bodies[0], self.bodies[9], self.bodies[10])})


class CompressedHeaderTest(unittest.TestCase):
    """With "compressed_headers" each compressed chunk is preceded by its header as text
    (manifest documentFormat.compressedHeader); text chunks are unchanged."""

    def setUp(self):
        self.data = _TextData()
        self.src = train.WindowSource.__new__(train.WindowSource)
        self.src.data, self.src.x = self.data, 4
        self.chunks = [C.Chunk("pkg/b.py", "def area(w, h):\n    return w * h\n", 1), C.Chunk("pkg/a.py", "RATE = 3\n", 1)]
        self.q = C.QA("params", "area", C.Q_PARAMS.format(name="area"), "w, h")
        train.HEADERS = True

    def tearDown(self):
        train.HEADERS = False

    def test_header_text_before_each_compressed_chunk(self):
        it = self.src.layout(self.chunks, [True, False], [self.q], 512)
        self.assertEqual([k for k, _ in it["segments"]], ["t", "t", "c", "t"])
        self.assertEqual(it["segments"][1][1], self.data.enc("### pkg/a.py\n"))
        self.assertEqual(it["segments"][2][1], self.data.enc(self.chunks[1].render()))  # the encoder still sees the header
        self.assertEqual(it["segments"][3][1], self.data.enc(self.chunks[0].render()))
        item = train.arc_qa_item(self.data, self.chunks, self.q)
        self.assertEqual([k for k, _ in item["segments"]], ["t", "t", "c", "t", "c"])

    def test_cost_counts_the_header(self):
        ids = self.data.enc(self.chunks[1].render())
        self.assertEqual(self.src.costs(ids, 5)[1], self.src.costs(ids)[1] + 5)


class GrowEncoderTest(unittest.TestCase):
    """train.py grow_encoder_from: a checkpoint's encoder loaded into a deeper one computes the same
    vectors (added layers start as the identity), and training then reaches the added layers."""

    def _models(self, enc_layers):
        torch.manual_seed(0)
        dcfg = DecoderConfig(vocab_size=70, dim=32, n_layers=4, n_heads=4, n_kv_heads=2, head_dim=8, hidden_dim=48)
        ecfg = EncoderConfig(vocab_size=70, dim=32, n_layers=enc_layers, n_heads=4, n_kv_heads=2, head_dim=8,
                             hidden_dim=48, out_dim=32, pooling_factor=4, proj_hidden=16)
        return Decoder(dcfg), ArcEncoder(ecfg)

    def test_grown_encoder_computes_the_checkpoints_vectors(self):
        import os
        import tempfile
        import safetensors_io
        from model import encode_documents
        dec, small = self._models(2)
        for p in small.parameters():  # a trained-looking encoder: nothing zero
            torch.nn.init.normal_(p, std=0.2)
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "w.safetensors")
            tensors = {f"decoder.{k}": v for k, v in dec.state_dict().items()}
            tensors.update({f"encoder.{k}": v for k, v in small.state_dict().items()})
            safetensors_io.save_file(f, tensors)
            ck = safetensors_io.open_checkpoint(f)
            _, big = self._models(4)
            with torch.no_grad():
                train.grow_encoder_from(big, dec, ck)
            docs = [[5, 6, 7, 8, 9, 10, 11, 12, 13], [20, 30, 40, 5, 6]]
            a = encode_documents(small.eval(), docs)
            b = encode_documents(big.eval(), docs)
            for x, y in zip(a, b):
                torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
            # The checkpoint's pooling layer is the last one; the added layers come from the decoder.
            torch.testing.assert_close(big.layers[3].attention.wq.weight, small.layers[1].attention.wq.weight)
            torch.testing.assert_close(big.layers[1].attention.wq.weight, dec.layers[1].attention.wq.weight)
            self.assertEqual(float(big.layers[2].feed_forward.w2.weight.abs().sum()), 0.0)
            # Zero output projections still learn: a loss on the vectors reaches them.
            out = encode_documents(big.train(), docs)
            sum(o.pow(2).sum() for o in out).backward()
            self.assertGreater(float(big.layers[1].attention.wo.weight.grad.abs().sum()), 0.0)
            self.assertGreater(float(big.layers[2].feed_forward.w2.weight.grad.abs().sum()), 0.0)

    def test_a_shallower_config_is_refused(self):
        import os
        import tempfile
        import safetensors_io
        dec, deep = self._models(3)
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "w.safetensors")
            tensors = {f"decoder.{k}": v for k, v in dec.state_dict().items()}
            tensors.update({f"encoder.{k}": v for k, v in deep.state_dict().items()})
            safetensors_io.save_file(f, tensors)
            _, shallow = self._models(2)
            with self.assertRaises(SystemExit), torch.no_grad():
                train.grow_encoder_from(shallow, dec, safetensors_io.open_checkpoint(f))
