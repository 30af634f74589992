"""Packs what the prepared GPU training run needs into tools/.data-gpu/ (< 60 MB, git-ignored):
the tokenizer, the held-out QA set and the corpus compressed with xz.

    /usr/bin/python3 tools/pack_gpu_run.py && bash tools/gpu_run.sh   (see tools/README.md)
"""
import io
import lzma
import os
import shutil
import sys

import torch

src, dst = "tools/.data", "tools/.data-gpu"
os.makedirs(dst, exist_ok=True)
for name in ("tokenizer.json", "heldout-qa.jsonl"):
    shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
blob = torch.load(os.path.join(src, "corpus.pt"))
buf = io.BytesIO()
torch.save(blob, buf)
with lzma.open(os.path.join(dst, "corpus.pt.xz"), "wb", preset=6) as f:
    f.write(buf.getvalue())
total = sum(os.path.getsize(os.path.join(dst, n)) for n in os.listdir(dst))
print(f"{dst}: {total / 1e6:.1f} MB")
sys.exit(0 if total < 60e6 else 1)
