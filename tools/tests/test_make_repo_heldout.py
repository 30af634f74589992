"""tools/make_repo_heldout.py: whole-folder held-out questions (synthetic trees + the committed set)."""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
import unittest
from collections import Counter
from contextlib import redirect_stdout

import sys

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
import corpus as C  # noqa: E402
import make_repo_heldout as M  # noqa: E402

MODEL_DIR = os.path.join(os.path.dirname(TOOLS), "models", "arc-tiny-code")
TOKENIZER = os.path.join(MODEL_DIR, "tokenizer.json")


def names(kind: str, prefix: str, held: bool, n: int):
    """The first n names `prefix<i>` whose corpus package `kind:prefix<i>` is (or is not) held out."""
    out, i = [], 0
    while len(out) < n:
        if C.held_out(f"{kind}:{prefix}{i}") == held:
            out.append(f"{prefix}{i}")
        i += 1
    return out


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


FILLER = "".join(f"    total_{i} = compute(value_{i}, offset={i})\n" for i in range(12))


class SyntheticTreeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        t = cls.tmp.name
        cls.py, cls.nm = os.path.join(t, "py"), os.path.join(t, "node_modules")
        os.makedirs(cls.nm)
        held_py = names("py", "zmod", True, 3)
        train_py = names("py", "zmod", False, 1)[0]
        held_npm = names("npm", "zpkg", True, 1)[0]
        cls.multi, cls.single, cls.big = held_py
        shared = "def shared_helper(a, b):\n    return a + b\n" + FILLER
        # A training package, and a held-out copy of one of its files (trained on: left out).
        write(os.path.join(cls.py, train_py, "__init__.py"), "def trained_only(x, y):\n    return x\n" + FILLER)
        write(os.path.join(cls.py, train_py, "common.py"), shared)
        # A held-out package of several files: a name defined twice is not asked about.
        write(os.path.join(cls.py, cls.multi, "__init__.py"), "LIMIT = 10\n\ndef dup(a):\n    return a\n" + FILLER)
        write(os.path.join(cls.py, cls.multi, "core.py"),
              "import os\n\n\ndef area(width, height=2):\n    return width * height\n" + FILLER
              + "\nclass Shape:\n    def dup(self, z):\n        return z\n\nNAME = 'shape'\n")
        write(os.path.join(cls.py, cls.multi, "common.py"), shared)
        # A one-file module: no "file" questions.
        write(os.path.join(cls.py, cls.single + ".py"), "def solo(p, q, *rest):\n    return p\n\nSOLO_RATE = 0.5\n" + FILLER)
        # Too large as a whole: its sub-packages that fit are used instead.
        for sub in ("alpha", "beta"):
            body = "".join(f"def {sub}_fn{i}(arg{i}, other):\n    return arg{i}\n\n{sub.upper()}_C{i} = {i}\n" + FILLER for i in range(4))
            write(os.path.join(cls.py, cls.big, sub, "__init__.py"), body)
            write(os.path.join(cls.py, cls.big, sub, "more.py"), f"class {sub.title()}Thing:\n    pass\n" + FILLER)
        write(os.path.join(cls.py, cls.big, "top.py"), FILLER * 2)
        # An npm package with a dist/ folder (which the repository's .gitignore would leave out).
        base = os.path.join(cls.nm, held_npm)
        write(os.path.join(base, "package.json"), json.dumps({"name": held_npm, "version": "1.2.3", "license": "MIT"}))
        write(os.path.join(base, "LICENSE"), "MIT License\n")
        write(os.path.join(base, "dist", "index.js"),
              "export function parseThing(input, { strict = true } = {}) {\n  return input;\n}\n" + FILLER.replace("    ", "  // ")
              + "const DEFAULT_PORT = 8080;\n")
        write(os.path.join(base, "lib", "util.js"), "function helperFn(a, b) {\n  return a;\n}\n" + FILLER.replace("    ", "  // "))
        cls.npm = held_npm
        cls.train = train_py
        cls.out = os.path.join(t, "out")
        cls.args = ["--node-modules", cls.nm, "--py-root", cls.py, "--tokenizer", TOKENIZER, "--out", cls.out,
                    "--min-tokens", "200", "--max-tokens", "1500", "--rows", "36", "--seed", "3"]
        cls.saved_root = C.PY_ROOT
        with redirect_stdout(io.StringIO()) as log:
            M.main(cls.args)
        cls.log = log.getvalue()
        with open(os.path.join(cls.out, "heldout-repos.jsonl"), encoding="utf-8") as f:
            cls.rows = [json.loads(line) for line in f]

    @classmethod
    def tearDownClass(cls):
        C.PY_ROOT = cls.saved_root
        cls.tmp.cleanup()

    def folders(self):
        return sorted(d for d in os.listdir(os.path.join(self.out, "heldout-repos")) if d not in ("LICENSES", "README.md", ".gitignore"))

    def test_only_held_out_packages_in_the_size_range(self):
        self.assertEqual(self.folders(), sorted([f"npm-{self.npm}", f"py-{self.multi}", f"py-{self.single}",
                                                  f"py-{self.big}-alpha", f"py-{self.big}-beta"]))
        multi = os.path.join(self.out, "heldout-repos", f"py-{self.multi}")
        self.assertEqual(sorted(os.listdir(multi)), ["__init__.py", "core.py"], "common.py equals a training file")
        self.assertIn("the same text as the training file", self.log)
        self.assertTrue(os.path.exists(os.path.join(self.out, "heldout-repos", f"npm-{self.npm}", "dist", "index.js")))
        self.assertFalse(os.path.exists(os.path.join(self.out, "heldout-repos", f"py-{self.big}-alpha", "top.py")))
        with open(os.path.join(self.out, "heldout-repos", ".gitignore"), encoding="utf-8") as f:
            self.assertIn("!dist/", f.read())
        with open(os.path.join(self.out, "heldout-repos", "LICENSES", f"npm-{self.npm}.txt"), encoding="utf-8") as f:
            self.assertEqual(f.read(), "MIT License\n")

    def test_rows_are_answerable_from_their_folder(self):
        # 14 file, 12 params and 12 value questions are unambiguous: every params and value one is asked.
        self.assertEqual(len(self.rows), 36)
        self.assertEqual(Counter(r["kind"] for r in self.rows), {"file": 12, "params": 12, "value": 12})
        self.assertEqual(len({r["id"] for r in self.rows}), 36)
        for r in self.rows:
            name = re.search(r"`(.+)`", r["question"]).group(1)
            self.assertEqual(r["question"], M.QUESTION[r["kind"]].format(name=name))
            path = os.path.join(self.out, r["root"], *r["answerPath"].split("/"))
            with open(path, encoding="utf-8") as f:
                line = f.read().split("\n")[r["answerLine"] - 1]
            self.assertRegex(line, r"^(def|class|export function|function|const)?\s*" + re.escape(name) + r"\b")
            if r["kind"] == "file":
                self.assertEqual(r["answers"], [r["answerPath"]], "the path as `ask --root` shows it: root-relative")
                self.assertNotEqual(r["root"], f"heldout-repos/py-{self.single}", "one-file folders have no file questions")
            self.assertNotIn(name, ("dup", "shared_helper", "trained_only"))
        by_name = {re.search(r"`(.+)`", r["question"]).group(1) + ":" + r["kind"]: r for r in self.rows}
        self.assertEqual(by_name["area:params"]["answers"], ["width, height=2"])
        self.assertEqual((by_name["area:params"]["answerPath"], by_name["area:params"]["answerLine"]), ("core.py", 4))
        self.assertEqual(by_name["parseThing:params"]["answers"], ["input, { strict = true } = {}"])
        self.assertEqual(by_name["parseThing:params"]["answerPath"], "dist/index.js")
        self.assertEqual(by_name["DEFAULT_PORT:value"]["answers"], ["8080"])
        self.assertEqual(by_name["NAME:value"]["answers"], ["'shape'"])
        self.assertEqual(by_name["alpha_fn2:params"]["root"], f"heldout-repos/py-{self.big}-alpha")

    def test_definitions_match_corpus_extract_qa(self):
        text = "def f(a,\n      b):\n    pass\n\nclass K:\n    pass\nX = 'v'\nexport const Y = 3;\n"
        mine = sorted((d.kind, d.name, d.answer) for d in M.definitions("p.py", text))
        theirs = sorted((q.kind, q.name, q.answer) for q in C.extract_qa(C.Chunk("p.py", text, 1)))
        self.assertEqual(mine, theirs)
        self.assertEqual({d.name: d.line for d in M.definitions("p.py", text)}, {"f": 1, "K": 5, "X": 7, "Y": 8})

    def test_dev_set_uses_training_packages_only(self):
        # --dev: the same construction over the training packages (decoding choices are made there).
        out = os.path.join(self.tmp.name, "dev")
        args = list(self.args)
        args[args.index("--out") + 1] = out
        args[args.index("--min-tokens") + 1] = "20"
        with redirect_stdout(io.StringIO()):
            M.main(args + ["--dev"])
        folders = sorted(d for d in os.listdir(os.path.join(out, "dev-repos")) if d not in ("LICENSES", "README.md", ".gitignore"))
        self.assertEqual(folders, [f"py-{self.train}"])
        self.assertFalse(os.path.exists(os.path.join(out, "heldout-repos.jsonl")))
        with open(os.path.join(out, "dev-repos.jsonl"), encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        self.assertTrue(rows)
        for r in rows:
            self.assertEqual(r["root"], f"dev-repos/py-{self.train}")
            self.assertFalse(C.held_out(r["package"].split("/")[0]))
        with open(os.path.join(out, "dev-repos", "README.md"), encoding="utf-8") as f:
            self.assertIn("TRAINING package", f.read())

    def test_deterministic(self):
        out2 = os.path.join(self.tmp.name, "out2")
        args = list(self.args)
        args[args.index("--out") + 1] = out2
        with redirect_stdout(io.StringIO()):
            M.main(args)
        for rel in ("heldout-repos.jsonl", "heldout-repos/README.md"):
            with open(os.path.join(self.out, rel), encoding="utf-8") as a, open(os.path.join(out2, rel), encoding="utf-8") as b:
                self.assertEqual(a.read(), b.read())


class CommittedSetTest(unittest.TestCase):
    """The set in models/arc-tiny-code agrees with its folders and only uses held-out packages."""

    def test_committed_rows(self):
        path = os.path.join(MODEL_DIR, "heldout-repos.jsonl")
        if not os.path.exists(path):
            self.skipTest("models/arc-tiny-code/heldout-repos.jsonl is not there")
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        self.assertGreaterEqual(len(rows), 200)
        for r in rows:
            self.assertTrue(C.held_out(r["package"].split("/")[0]), r["package"])
            with open(os.path.join(MODEL_DIR, r["root"], *r["answerPath"].split("/")), encoding="utf-8") as f:
                line = f.read().split("\n")[r["answerLine"] - 1]
            self.assertIn(re.search(r"`(.+)`", r["question"]).group(1), line)
            if r["kind"] == "file":
                self.assertEqual(r["answers"], [r["answerPath"]])


if __name__ == "__main__":
    unittest.main()
