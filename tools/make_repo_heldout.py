"""Held-out repository set: questions whose context is a WHOLE package folder, larger than the window.

    /usr/bin/python3 tools/make_repo_heldout.py            # writes models/arc-tiny-code/heldout-repos{/,.jsonl}

`models/arc-tiny-code/heldout-qa.jsonl` (tools/prepare_data.py) gives each question its answer's
chunk plus 0-3 distractor chunks: the context nearly always fits the decoder's 512 positions. Real
use is different: `arc-context ask --root FOLDER` scans a folder many times that size, and the
selection decides what reaches the decoder. This set measures that:

- Packages: only those `corpus.held_out()` marks as held out (the hash split tools/prepare_data.py
  trains with), so no file of them was trained on. A package's source is exactly the files
  `corpus.collect()` keeps for it (Python stdlib module folders from /usr/lib/python3.11, npm
  packages with permissive licenses from ./node_modules). Kept: packages whose source has more
  than --min-tokens and at most --max-tokens tokens of the default tokenizer (several times the
  512-position window, and small enough to commit); largest first dropped above --max-bytes.
- Folders: models/arc-tiny-code/heldout-repos/<folder>/<path relative to the package root>, only
  the files corpus keeps, texts as corpus reads them (CRLF -> LF). <folder> is "py-<module>" or
  "npm-<name>" ("@scope/name" -> "npm-scope-name"). Each package's license text goes to
  heldout-repos/LICENSES/ and heldout-repos/README.md lists the packages (both outside every
  folder a question reads). heldout-repos/.gitignore re-includes dist/ and out/, which the
  repository's .gitignore leaves out everywhere (the scan of one folder does not read the
  .gitignore files above it, so the pipeline sees these files either way).
- Rows (heldout-repos.jsonl, `arc-context eval` format): {"id", "kind": "file"|"params"|"value",
  "question", "answers": [answer], "root": "heldout-repos/<folder>" (relative to the JSONL's
  folder), "answerPath", "answerLine", "package"}. Questions use corpus.py's three wordings;
  answers follow corpus.extract_qa on the whole file (top-level definitions only: parameters
  between the definition's parentheses, whitespace collapsed, 1-80 characters; the literal value
  of a top-level constant). The "file" answer and answerPath are the path as `ask --root <folder>`
  shows it in the chunk header `### {path}`: relative to the folder, '/'-separated, no folder
  name in front (src/core/context/sources.ts names files of a single root that way).
  answerLine is the 1-based line where the definition starts (`def`, `function`, `class`, NAME =).
- Dropped as ambiguous: any name with more than one definition site in the package, counting the
  extracted top-level definitions and looser ones anywhere (indented def/class/function, methods,
  const/let/var, NAME = ... assignments at any indentation). "file" questions are asked only in
  packages of two files or more (with one file the answer needs no reading).
- A package larger than --max-tokens as a whole (Python's xml, email) is replaced by its
  sub-packages that fit (the folders right below its root, e.g. py-xml-dom = xml/dom/, paths
  relative to that folder; files directly in the package root are not used then).
- Selection (deterministic, --seed): per kind, candidates are shuffled per package, at most
  --per-package of one kind from one package, and taken round-robin over packages (sorted by
  folder). Each kind gets --rows/3 rows, or all it has when fewer (top-level constants are
  scarce), the rest going to the other kinds; the rows are then shuffled so `eval --limit N`
  takes a mix.

A held-out file whose text is identical to a training file's (shared boilerplate such as a
karma.conf.cjs) is left out before counting tokens: it was trained on. Checks before writing (the
script stops on a failure): no chosen package is a training package or has a training file under
its name; every row's answer line really holds its definition. The share of long lines that also
occur in training is printed per package.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus as C  # noqa: E402

KINDS = ("file", "params", "value")
QUESTION = {"file": C.Q_FILE, "params": C.Q_PARAMS, "value": C.Q_VALUE}
OUT_FOLDER = "heldout-repos"
# Folders the repository's .gitignore leaves out at any depth that package sources use.
REINCLUDE = ("dist/", "out/")


@dataclass
class Definition:
    kind: str  # file | params | value
    name: str
    answer: str
    path: str  # relative to the package root
    line: int  # 1-based


@dataclass
class Package:
    name: str  # corpus package id, e.g. "py:http" or "npm:@scope/x"
    folder: str  # safe folder name under heldout-repos/
    license: str
    files: List[Tuple[str, str]]  # (path relative to the package root, text)
    tokens: int = 0
    subfolder: str = ""  # set when the folder is one sub-package of a package too large as a whole
    license_file: Optional[str] = None
    version: str = ""


def folder_name(package: str) -> str:
    kind, name = package.split(":", 1)
    return kind + "-" + re.sub(r"[^A-Za-z0-9._-]+", "-", name.lstrip("@")).strip("-")


def package_prefix(f: C.SourceFile) -> str:
    """The part of a corpus path that names the package (stripped: paths are root-relative)."""
    kind, name = f.package.split(":", 1)
    if kind == "npm":
        return name + "/"
    return f.path.split("/")[0] + "/" if "/" in f.path else ""  # a one-file module sits at the top


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def definitions(path: str, text: str) -> List[Definition]:
    """corpus.extract_qa on the whole file, with the line of each definition."""
    out: List[Definition] = []
    for rx in (C._PY_DEF, C._JS_DEF):
        for m in rx.finditer(text):
            name, line = m.group(1), _line_of(text, m.start())
            p = C._params(text, m.end() - 1)
            if p:
                out.append(Definition("params", name, p, path, line))
            out.append(Definition("file", name, path, path, line))
    for m in C._CLASS.finditer(text):
        out.append(Definition("file", m.group(1), path, path, _line_of(text, m.start())))
    for rx in (C._PY_VALUE, C._JS_VALUE):
        for m in rx.finditer(text):
            out.append(Definition("value", m.group(1), m.group(2), path, _line_of(text, m.start())))
    return out


_ID = r"([A-Za-z_$][A-Za-z0-9_$]*)"
_LOOSE = [
    re.compile(r"(?<![A-Za-z0-9_$.])(?:def|class|function)\s*\*?\s*" + _ID),
    re.compile(r"(?<![A-Za-z0-9_$.])(?:const|let|var)\s+" + _ID + r"\s*[=:;,]"),
    re.compile(r"^[ \t]*(?:export\s+)?" + _ID + r"\s*(?::[^=\n]*)?=(?![=>])", re.M),
    re.compile(r"^[ \t]+(?:(?:static|async|get|set|public|private|protected|readonly)\s+)*\*?" + _ID + r"\s*\([^()\n]*\)\s*(?::[^{\n]*)?\{", re.M),
]


def loose_sites(files: Sequence[Tuple[str, str]]) -> Dict[str, set]:
    """Every place a name looks defined (any indentation), as {(path, line)} per name."""
    sites: Dict[str, set] = defaultdict(set)
    for path, text in files:
        for rx in _LOOSE:
            for m in rx.finditer(text):
                sites[m.group(1)].add((path, _line_of(text, m.start(1))))
    return sites


def candidates(pkg: Package) -> Dict[str, List[Definition]]:
    """Unambiguous questions of a package by kind."""
    defs = [d for path, text in pkg.files for d in definitions(path, text)]
    strict_sites: Dict[str, set] = defaultdict(set)
    for d in defs:
        strict_sites[d.name].add((d.path, d.line))
    loose = loose_sites(pkg.files)
    out: Dict[str, List[Definition]] = {k: [] for k in KINDS}
    seen = set()
    for d in defs:
        if len(strict_sites[d.name] | loose.get(d.name, set())) != 1:
            continue  # defined more than once: which one is meant?
        if d.kind == "file" and len(pkg.files) < 2:
            continue
        if (d.kind, d.name) in seen:
            continue
        seen.add((d.kind, d.name))
        out[d.kind].append(d)
    return out


def find_license(base: str) -> Optional[str]:
    for name in sorted(os.listdir(base)):
        if re.match(r"(?i)^(licen[cs]e|copying)(\.(md|txt))?$", name):
            return os.path.join(base, name)
    return None


def held_out_packages(node_modules: str, tok: bpe.Tokenizer, min_tokens: int, max_tokens: int, max_bytes: int,
                      log=print, dev: bool = False) -> Tuple[List[Package], List[C.SourceFile]]:
    """The held-out packages in the size range; with `dev`, training packages instead (see --dev)."""
    files = C.collect(node_modules)
    training = [f for f in files if not C.held_out(f.package)]
    train_texts = {_digest(f.text): f.path for f in training}
    by_pkg: Dict[str, List[C.SourceFile]] = defaultdict(list)
    for f in files:
        if C.held_out(f.package) == dev:
            continue
        same = None if dev else train_texts.get(_digest(f.text))
        if same is not None:  # boilerplate shared with a training package: it was trained on
            log(f"  leave out {f.path}: the same text as the training file {same}")
            continue
        by_pkg[f.package].append(f)
    pkgs: List[Package] = []
    for name in sorted(by_pkg):
        fs = by_pkg[name]
        rel = [(f.path[len(package_prefix(f)):], f.text) for f in fs]
        tokens = sum(len(tok.encode(t)) for _, t in rel)
        parts = [Package(name, folder_name(name), fs[0].license, rel, tokens)]
        if tokens > max_tokens:
            # Too large as a whole: its sub-packages (folders right below the package root) may fit.
            subs: Dict[str, List[Tuple[str, str]]] = defaultdict(list)
            for path, text in rel:
                if "/" in path:
                    top, rest = path.split("/", 1)
                    subs[top].append((rest, text))
            parts = [Package(name, folder_name(name) + "-" + re.sub(r"[^A-Za-z0-9._-]+", "-", top), fs[0].license, sub,
                             sum(len(tok.encode(t)) for _, t in sub), subfolder=top)
                     for top, sub in sorted(subs.items())]
            log(f"  {name}: {tokens} tokens, more than --max-tokens; trying its {len(parts)} sub-packages")
        for pkg in parts:
            if not (min_tokens < pkg.tokens <= max_tokens):
                log(f"  skip {pkg.name}{'/' + pkg.subfolder if pkg.subfolder else ''}: {pkg.tokens} tokens")
                continue
            pkgs.append(pkg)
    for pkg in pkgs:
        kind, short = pkg.name.split(":", 1)
        if kind == "npm":
            base = os.path.join(node_modules, short)
            pkg.license_file = find_license(base)
            with open(os.path.join(base, "package.json"), encoding="utf-8") as f:
                pkg.version = str(json.load(f).get("version", ""))
        else:
            lic = os.path.join(C.PY_ROOT, "LICENSE.txt")
            pkg.license_file = lic if os.path.exists(lic) else None
            pkg.version = "Python " + os.path.basename(C.PY_ROOT.rstrip("/")).replace("python", "")
    # Too much to commit: the largest go first.
    while pkgs and sum(len(t.encode()) for p in pkgs for _, t in p.files) > max_bytes:
        big = max(pkgs, key=lambda p: (sum(len(t.encode()) for _, t in p.files), p.name))
        log(f"  skip {big.name}: over --max-bytes")
        pkgs.remove(big)
    return pkgs, training


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_not_trained(pkgs: Sequence[Package], training: Sequence[C.SourceFile], log=print) -> None:
    """No chosen package trains, no chosen file equals a training file; reports shared long lines."""
    train_pkgs = {f.package for f in training}
    train_texts = {_digest(f.text): f.path for f in training}
    train_lines = {l.strip() for f in training for l in f.text.split("\n") if len(l.strip()) >= 40}
    for p in pkgs:
        if p.name in train_pkgs:
            raise SystemExit(f"{p.name} is a training package")
        short = p.name.split(":", 1)[1]
        if any(f.path.startswith(short + "/") or f.path == short + ".py" for f in training):
            raise SystemExit(f"a training file lives under {short}/")
        for path, text in p.files:
            same = train_texts.get(_digest(text))
            if same is not None:
                raise SystemExit(f"{p.name}/{path} is identical to the training file {same}")
        lines = [l.strip() for _, t in p.files for l in t.split("\n") if len(l.strip()) >= 40]
        shared = sum(l in train_lines for l in lines)
        log(f"  {p.name}: {shared} of {len(lines)} lines of 40+ characters also occur in training")


def choose(pkgs: Sequence[Package], rows: int, per_package: int, seed: int, folder: str = OUT_FOLDER) -> List[dict]:
    rng = random.Random(seed)
    by_folder = {p.folder: candidates(p) for p in pkgs}
    pools: Dict[str, List[Tuple[Package, List[Definition]]]] = {}
    for kind in KINDS:
        pools[kind] = []
        for p in sorted(pkgs, key=lambda p: p.folder):
            c = by_folder[p.folder][kind]
            rng.shuffle(c)
            pools[kind].append((p, c[:per_package]))
    # Equal shares; a kind with fewer questions than its share leaves the rest to the others.
    available = {k: sum(len(c) for _, c in pools[k]) for k in KINDS}
    target, left = {}, rows
    for i, kind in enumerate(sorted(KINDS, key=lambda k: (available[k], k))):
        target[kind] = min(available[kind], left // (len(KINDS) - i))
        left -= target[kind]
    out: List[dict] = []
    for kind in KINDS:
        taken = 0
        while taken < target[kind]:
            for p, q in pools[kind]:  # round-robin over packages
                if q and taken < target[kind]:
                    d = q.pop(0)
                    out.append({"kind": kind, "question": QUESTION[kind].format(name=d.name), "answers": [d.answer],
                                "root": f"{folder}/{p.folder}", "answerPath": d.path, "answerLine": d.line,
                                "package": p.name + ("/" + p.subfolder if p.subfolder else ""), "_name": d.name})
                    taken += 1
    rng.shuffle(out)
    for i, r in enumerate(out):
        r["id"] = f"{r['root'].split('/')[-1]}-{r['kind']}-{i}"
    return out


def check_rows(rows: Sequence[dict], pkgs: Sequence[Package], folder: str = OUT_FOLDER) -> None:
    texts = {(f"{folder}/{p.folder}", path): text for p in pkgs for path, text in p.files}
    for r in rows:
        line = texts[(r["root"], r["answerPath"])].split("\n")[r["answerLine"] - 1]
        if not C.ident_re(r["_name"]).search(line):
            raise SystemExit(f"{r['id']}: line {r['answerLine']} of {r['answerPath']} does not define {r['_name']}")


def write(out_dir: str, pkgs: Sequence[Package], rows: Sequence[dict], folder: str = OUT_FOLDER) -> None:
    repos = os.path.join(out_dir, folder)
    if os.path.isdir(repos):
        shutil.rmtree(repos)
    os.makedirs(os.path.join(repos, "LICENSES"))
    licenses = {}
    for p in pkgs:
        for path, text in p.files:
            dst = os.path.join(repos, p.folder, *path.split("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
        if p.license_file:
            name = "python.txt" if p.name.startswith("py:") else p.folder + ".txt"
            shutil.copyfile(p.license_file, os.path.join(repos, "LICENSES", name))
            licenses[p.name] = "LICENSES/" + name
    with open(os.path.join(repos, ".gitignore"), "w", encoding="utf-8") as f:
        f.write("# Package sources: the repository's .gitignore leaves these folder names out everywhere.\n")
        f.write("".join(f"!{d}\n" for d in REINCLUDE))
    counts = Counter((r["root"].split("/")[-1], r["kind"]) for r in rows)
    with open(os.path.join(repos, "README.md"), "w", encoding="utf-8") as f:
        seen = ("Every folder is one TRAINING package (--dev): a development set for decoding choices, never a "
                "measure of held-out quality" if folder != OUT_FOLDER else
                "Every folder is one package that training never saw (corpus.held_out)")
        f.write(f"# Package folders\n\nWritten by `tools/make_repo_heldout.py` (see its docstring); the questions are "
                f"`../{folder}.jsonl`. {seen}, with the source files the training corpus would have kept, unchanged.\n\n"
                "| folder | package | version | license | files | tokens | file | params | value |\n|---|---|---|---|---|---|---|---|---|\n")
        for p in sorted(pkgs, key=lambda p: p.folder):
            lic = f"[{p.license}]({licenses[p.name]})" if p.name in licenses else p.license
            f.write(f"| {p.folder} | {p.name}{'/' + p.subfolder if p.subfolder else ''} | {p.version} | {lic} | {len(p.files)} | {p.tokens} | "
                    + " | ".join(str(counts[(p.folder, k)]) for k in KINDS) + " |\n")
    with open(os.path.join(out_dir, folder + ".jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            row = {k: r[k] for k in ("id", "kind", "question", "answers", "root", "answerPath", "answerLine", "package")}
            f.write(json.dumps(row) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--node-modules", default="node_modules")
    ap.add_argument("--py-root", default=C.PY_ROOT, help="Python standard library folder (corpus.PY_ROOT)")
    ap.add_argument("--tokenizer", default="models/arc-tiny-code/tokenizer.json")
    ap.add_argument("--out", default="models/arc-tiny-code", help="folder of heldout-repos/ and heldout-repos.jsonl")
    ap.add_argument("--min-tokens", type=int, default=6000)
    ap.add_argument("--max-tokens", type=int, default=80000)
    ap.add_argument("--max-bytes", type=int, default=2_000_000, help="cap on the source bytes written")
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--per-package", type=int, default=40, help="most rows of one kind from one package")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--dev", action="store_true",
                    help="a development set from TRAINING packages instead (dev-repos/, dev-repos.jsonl; --out "
                         "tools/.data unless given): decoding choices are made on it, so the held-out set stays a test")
    a = ap.parse_args(argv)
    folder = "dev-repos" if a.dev else OUT_FOLDER
    if a.dev and a.out == ap.get_default("out"):
        a.out = os.path.join("tools", ".data")
    C.PY_ROOT = a.py_root
    tok = bpe.Tokenizer.load(a.tokenizer)
    pkgs, training = held_out_packages(a.node_modules, tok, a.min_tokens, a.max_tokens, a.max_bytes, dev=a.dev)
    if not pkgs:
        raise SystemExit("no package in the size range")
    if not a.dev:
        check_not_trained(pkgs, training)
    rows = choose(pkgs, a.rows, a.per_package, a.seed, folder)
    check_rows(rows, pkgs, folder)
    write(a.out, pkgs, rows, folder)
    size = sum(len(t.encode()) for p in pkgs for _, t in p.files)
    print(f"{len(pkgs)} packages ({size / 1e6:.2f} MB, {sum(p.tokens for p in pkgs)} tokens), {len(rows)} rows "
          f"{dict(Counter(r['kind'] for r in rows))}")
    for p in sorted(pkgs, key=lambda p: p.folder):
        n = Counter(r["kind"] for r in rows if r["root"].endswith("/" + p.folder))
        print(f"  {p.folder:40s} {len(p.files):3d} files {p.tokens:6d} tokens  " + " ".join(f"{k} {n[k]}" for k in KINDS))


if __name__ == "__main__":
    main()
