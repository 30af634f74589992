"""Evaluate ONNX models with onnxruntime-node from Python (no Python onnxruntime here).

`run_onnx([(model_path, {name: ndarray})...])` -> [{output_name: ndarray}] through one
`node tools/onnx_run.mjs` process. Needs node and the repo's node_modules/onnxruntime-node.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from typing import Dict, List, Sequence, Tuple

import numpy as np

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
SCRIPT = os.path.join(TOOLS, "onnx_run.mjs")
_TYPES = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64", np.dtype(np.float16): "float16",
          np.dtype(np.int32): "int32"}
_NP = {v: k for k, v in _TYPES.items()}


def available() -> Tuple[bool, str]:
    if shutil.which("node") is None:
        return False, "node is not on PATH"
    if not os.path.isdir(os.path.join(REPO, "node_modules", "onnxruntime-node")):
        return False, "node_modules/onnxruntime-node is missing (run npm install)"
    return True, ""


def run_onnx(runs: Sequence[Tuple[str, Dict[str, np.ndarray]]]) -> List[Dict[str, np.ndarray]]:
    req = {"runs": []}
    for model, inputs in runs:
        spec = {}
        for name, arr in inputs.items():
            arr = np.ascontiguousarray(arr)
            spec[name] = {"type": _TYPES[arr.dtype], "dims": list(arr.shape),
                          "b64": base64.b64encode(arr.tobytes()).decode("ascii")}
        req["runs"].append({"model": os.path.abspath(model), "inputs": spec})
    with tempfile.TemporaryDirectory() as d:
        rq, rs = os.path.join(d, "req.json"), os.path.join(d, "res.json")
        with open(rq, "w") as f:
            json.dump(req, f)
        env = dict(os.environ, ORT_DISABLE_TELEMETRY="1")
        p = subprocess.run(["node", SCRIPT, rq, rs], cwd=REPO, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"onnxruntime-node failed:\n{p.stderr[-4000:]}")
        with open(rs) as f:
            res = json.load(f)
    out = []
    for r in res["runs"]:
        o = {}
        for name, t in r["outputs"].items():
            o[name] = np.frombuffer(base64.b64decode(t["b64"]), dtype=_NP[t["type"]]).reshape(t["dims"]).copy()
        out.append(o)
    return out
