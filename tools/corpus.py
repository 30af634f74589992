"""Training and evaluation data for the default model: real code, chunked documents, QA.

Sources (all available offline on this machine, all permissive):
- the Python standard library under /usr/lib/python3.11 (PSF license),
- JavaScript/TypeScript sources of MIT/ISC/BSD/Apache-2.0 packages in node_modules.
Files are split into train / held-out by package (top-level module or npm package), so no
file and no package is in both.

Documents follow the package's document format: "### {path}\n" + body (body ends in one
newline), at most `max_tokens` tokens per rendered chunk, cut at blank lines where possible.

Questions use exactly the three wordings that the model card lists.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

HEADER = "### {path}\n"
Q_FILE = "Which file defines `{name}`?"
Q_PARAMS = "What are the parameters of `{name}`?"
Q_VALUE = "What is the value of `{name}`?"
QUESTION_TEMPLATE = "Question: {question}\nAnswer: "
ANSWER_END = "\n"

PY_ROOT = "/usr/lib/python3.11"
OK_LICENSES = ("MIT", "ISC", "BSD", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "0BSD")


@dataclass
class SourceFile:
    path: str  # shown to the model, e.g. "json/decoder.py" or "marked/lib/marked.cjs"
    text: str
    package: str
    license: str


@dataclass
class Chunk:
    path: str
    body: str  # ends with exactly one "\n"
    start_line: int

    def render(self) -> str:
        return HEADER.format(path=self.path) + self.body


@dataclass
class QA:
    kind: str  # file | params | value
    name: str
    question: str
    answer: str


def held_out(package: str) -> bool:
    return int(hashlib.sha256(package.encode()).hexdigest(), 16) % 10 == 0


def _readable(path: str, limit: int = 200_000) -> Optional[str]:
    try:
        if os.path.getsize(path) > limit:
            return None
        with open(path, "rb") as f:
            raw = f.read()
        if b"\0" in raw:
            return None
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines() or [""]
    if sum(len(l) for l in lines) / len(lines) > 100 or max(len(l) for l in lines) > 1000:
        return None  # minified or generated
    return text.replace("\r\n", "\n")


def python_stdlib() -> Iterator[SourceFile]:
    for root, dirs, files in os.walk(PY_ROOT):
        rel = os.path.relpath(root, PY_ROOT)
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test", "lib2to3"))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.normpath(os.path.join(rel, name))
            text = _readable(os.path.join(root, name))
            if text:
                pkg = path.split("/")[0] if "/" in path else path[:-3]
                yield SourceFile(path, text, "py:" + pkg, "PSF-2.0")


def npm_packages(node_modules: str) -> Iterator[SourceFile]:
    seen = set()
    for entry in sorted(os.listdir(node_modules)):
        dirs = [os.path.join(entry, s) for s in sorted(os.listdir(os.path.join(node_modules, entry)))] if entry.startswith("@") else [entry]
        for pkg in dirs:
            base = os.path.join(node_modules, pkg)
            try:
                with open(os.path.join(base, "package.json"), encoding="utf-8") as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                continue
            lic = meta.get("license")
            if not isinstance(lic, str) or lic not in OK_LICENSES or pkg in seen:
                continue
            seen.add(pkg)
            for root, ds, files in os.walk(base):
                ds[:] = sorted(d for d in ds if d not in ("node_modules", "test", "tests", "__tests__"))
                for name in sorted(files):
                    if not re.search(r"\.(js|mjs|cjs|ts|mts)$", name) or ".min." in name or name.endswith(".d.ts") and os.path.getsize(os.path.join(root, name)) > 60_000:
                        continue
                    text = _readable(os.path.join(root, name))
                    if text:
                        rel = os.path.relpath(os.path.join(root, name), node_modules)
                        yield SourceFile(rel, text, "npm:" + pkg, lic)


def collect(node_modules: str) -> List[SourceFile]:
    return list(python_stdlib()) + list(npm_packages(node_modules))


# --------------------------------------------------------------------------- chunking

_TOP_DEF = re.compile(r"^(def |class |async def |function |export |const |let |var |@)")


def chunk_file(path: str, text: str, count_tokens, max_tokens: int) -> List[Chunk]:
    """Cut into rendered chunks of <= max_tokens tokens, preferring blank lines / definitions."""
    header_cost = count_tokens(HEADER.format(path=path))
    budget = max_tokens - header_cost
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    costs = [count_tokens(l + "\n") for l in lines]
    chunks: List[Chunk] = []
    i = 0
    while i < len(lines):
        total, j, last_good = 0, i, -1
        while j < len(lines) and total + costs[j] <= budget:
            total += costs[j]
            j += 1
            if j < len(lines) and (lines[j].strip() == "" or _TOP_DEF.match(lines[j])):
                last_good = j
        if j == i:  # one line longer than the budget: skip it (rare after the minified filter)
            i += 1
            continue
        end = j if j == len(lines) or last_good <= i + (j - i) // 2 else last_good
        body = "\n".join(lines[i:end]).rstrip("\n") + "\n"
        if body.strip():
            chunks.append(Chunk(path, body, i + 1))
        i = end
        while i < len(lines) and lines[i].strip() == "":
            i += 1
    return chunks


# --------------------------------------------------------------------------- QA extraction

_PY_DEF = re.compile(r"^(?:async\s+)?def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", re.M)
_JS_DEF = re.compile(r"^(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][A-Za-z0-9_$]*)\s*\(", re.M)
_CLASS = re.compile(r"^(?:export\s+)?(?:default\s+)?class\s+([A-Za-z_][A-Za-z0-9_]*)\b", re.M)
_LITERAL = r"(-?[0-9][0-9_.xXa-fA-FeE+-]*|'[^'\\\n]{0,40}'|\"[^\"\\\n]{0,40}\"|True|False|None|true|false|null)"
_PY_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*" + _LITERAL + r"\s*(?:#.*)?$", re.M)
_JS_VALUE = re.compile(r"^(?:export\s+)?(?:const|let|var)\s+([A-Za-z_$][A-Za-z0-9_$]*)\s*=\s*" + _LITERAL + r"\s*;?\s*(?://.*)?$", re.M)


def _params(text: str, open_at: int) -> Optional[str]:
    depth, i = 0, open_at
    while i < len(text):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                inner = " ".join(text[open_at + 1:i].split())
                return inner if len(inner) <= 80 else None
        i += 1
    return None


def extract_qa(chunk: Chunk) -> List[QA]:
    """Questions answerable from this chunk alone (file questions need a unique name)."""
    out: List[QA] = []
    body = chunk.body
    for rx in (_PY_DEF, _JS_DEF):
        for m in rx.finditer(body):
            name = m.group(1)
            p = _params(body, m.end() - 1)
            if p:  # empty parameter lists carry no information to copy
                out.append(QA("params", name, Q_PARAMS.format(name=name), p))
            out.append(QA("file", name, Q_FILE.format(name=name), chunk.path))
    for m in _CLASS.finditer(body):
        out.append(QA("file", m.group(1), Q_FILE.format(name=m.group(1)), chunk.path))
    for rx in (_PY_VALUE, _JS_VALUE):
        for m in rx.finditer(body):
            out.append(QA("value", m.group(1), Q_VALUE.format(name=m.group(1)), m.group(2)))
    return out


def defined_names(chunk: Chunk) -> set:
    return {q.name for q in extract_qa(chunk)}


# --------------------------------------------------------------------------- renaming

class Namer:
    """Random identifiers and paths built from word pieces seen in real code."""

    def __init__(self, words: Sequence[str], seed: int):
        self.words = [w for w in words if 2 <= len(w) <= 8 and w.isalpha() and w.islower()]
        self.rng = random.Random(seed)

    def ident(self) -> str:
        n = self.rng.choice((1, 2, 2, 3))
        parts = [self.rng.choice(self.words) for _ in range(n)]
        style = self.rng.random()
        if style < 0.6:
            return "_".join(parts)
        if style < 0.85:
            return parts[0] + "".join(p.title() for p in parts[1:])
        return "".join(p.title() for p in parts)

    def path(self, like: str) -> str:
        ext = os.path.splitext(like)[1] or ".py"
        depth = self.rng.choice((0, 1, 1, 2))
        dirs = [self.rng.choice(self.words) for _ in range(depth)]
        return "/".join(dirs + ["_".join(self.rng.choice(self.words) for _ in range(self.rng.choice((1, 2)))) + ext])


def ident_re(name: str) -> "re.Pattern[str]":
    """`name` as a whole identifier: not inside a longer name (letters, digits, _ and $)."""
    return re.compile(r"(?<![A-Za-z0-9_$])" + re.escape(name) + r"(?![A-Za-z0-9_$])")


def rename(chunks: List[Chunk], qa: QA, namer: Namer, target: int) -> Tuple[List[Chunk], QA]:
    """Rename the asked name everywhere (and the answer file's path) so answers must be read."""
    new = namer.ident()
    rx = ident_re(qa.name)
    out = [Chunk(c.path, rx.sub(new, c.body), c.start_line) for c in chunks]
    answer = rx.sub(new, qa.answer) if qa.kind == "params" else qa.answer
    if qa.kind == "file":
        newpath = namer.path(qa.answer)
        out = [Chunk(newpath if c.path == qa.answer else c.path, c.body, c.start_line) for c in out]
        answer = newpath
    question = {"file": Q_FILE, "params": Q_PARAMS, "value": Q_VALUE}[qa.kind].format(name=new)
    return out, QA(qa.kind, new, question, answer)
