"""A stand-in for vLLM and SGLang, for tests: it is NOT either engine.

vLLM and SGLang do not install on this project's machines (no GPU, Debian's torch 1.13), so
this small server implements the request and response shapes their documentation gives for
decoding from precomputed embeddings, and answers with the bundled decoder in PyTorch
(tools/model.py, weights from a package's weights.safetensors):

- vLLM, OpenAI-compatible Completions: POST /v1/completions with `prompt_embeds` = base64 of a
  torch.save'd (seq_len, hidden) tensor (read with torch.load(weights_only=True), as vLLM
  does); `max_tokens`, `temperature`, `top_p`, `seed`, `stop`, `stream` (SSE `data: {...}`
  chunks, then `data: [DONE]`). Errors as OpenAI error objects. GET /v1/models.
  Refuses prompt_embeds with vLLM's message unless prompt embeds are enabled (the default
  here; --no-prompt-embeds plays a server started without --enable-prompt-embeds).
- SGLang native: POST /generate with `input_embeds` (nested JSON float lists, [seq][hidden])
  and `sampling_params` {max_new_tokens, temperature, top_p, stop}; `stream` sends SSE events
  whose `text` is the whole text so far (SGLang's default), then `data: [DONE]`.

Generation is greedy at temperature 0 (argmax, first index on ties), stops at EOS, at a stop
string (excluded from the text, as both engines do by default) or at the token limit. A
streamed response is written token by token; when the client closes the connection the
generation stops and the request is logged as `client-closed`.

--test-controls adds two endpoints no engine has, for the test suite only:
  POST /_test/control {"fail_next": {"status": 503, "body": "..."}, "token_delay_s": 0.1,
                       "first_token_delay_s": 0.0}
  GET  /_test/log     the requests served: path, outcome, generated tokens
Usage: python3 tools/engine_test_server.py --package models/arc-tiny-code [--port 0]
It prints `engine-test-server listening on http://HOST:PORT` once it accepts requests.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import Tokenizer  # noqa: E402
from model import Decoder, DecoderConfig  # noqa: E402
import safetensors_io  # noqa: E402

PROMPT_EMBEDS_DISABLED = "You must set `--enable-prompt-embeds` to input `prompt_embeds`."


class RequestError(Exception):
    def __init__(self, status: int, message: str, kind: str = "BadRequestError"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class ClientClosed(Exception):
    pass


class Engine:
    """The package's decoder in PyTorch, with a KV cache, one request at a time."""

    def __init__(self, package: str):
        with open(os.path.join(package, "weights.config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        with open(os.path.join(package, "arc-model.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        self.cfg = DecoderConfig(**cfg["decoder"])
        self.decoder = Decoder(self.cfg).eval()
        ckpt = safetensors_io.open_checkpoint(os.path.join(package, "weights.safetensors"))
        state = {k[len("decoder."):]: ckpt.get(k) for k in ckpt.keys() if k.startswith("decoder.")}
        self.decoder.load_state_dict(state)
        dec = manifest["decoder"]
        self.tokenizer = Tokenizer.load(os.path.join(package, dec["tokenizer"]))
        self.eos = int(dec["eosTokenId"])
        self.name = manifest["name"]
        self.lock = threading.Lock()

    def generate(self, embeds: torch.Tensor, max_tokens: int, temperature: float, top_p: float,
                 seed: Optional[int], stops: List[str], on_text=None, token_delay: float = 0.0,
                 first_delay: float = 0.0) -> Tuple[str, str, Optional[str], int]:
        """Returns (text, finish_reason, matched stop, generated tokens). on_text(delta) streams."""
        gen = torch.Generator().manual_seed(seed if seed is not None else int(time.time() * 1000) % (2 ** 31))
        ids: List[int] = []
        emitted = 0
        longest = max((len(s) for s in stops), default=0)
        with self.lock, torch.no_grad():
            logits, past = self.decoder(embeds.to(torch.float32).unsqueeze(0))
            if first_delay:
                time.sleep(first_delay)
            while len(ids) < max_tokens:
                last = logits[0, -1]
                if temperature > 0:
                    nxt = sample(last, temperature, top_p, gen)
                else:
                    nxt = int(torch.argmax(last))
                if nxt == self.eos:
                    return self._finish(ids, emitted, on_text, "stop", None)
                ids.append(nxt)
                text = self.tokenizer.decode(ids)
                for s in stops:
                    at = text.find(s)
                    if at >= 0:
                        if on_text and at > emitted:
                            on_text(text[emitted:at])
                        return text[:at], "stop", s, len(ids)
                # Hold back an incomplete UTF-8 character and text that may start a stop string.
                end = len(text)
                while end > emitted and text[end - 1] == "\ufffd":
                    end -= 1
                for k in range(min(longest - 1, end - emitted), 0, -1):
                    if any(s.startswith(text[end - k:end]) for s in stops):
                        end -= k
                        break
                if on_text and end > emitted:
                    on_text(text[emitted:end])
                    emitted = end
                if len(ids) >= max_tokens:
                    break
                if token_delay:
                    time.sleep(token_delay)
                pos = embeds.shape[0] + len(ids) - 1
                if pos >= self.cfg.context_length:
                    break
                logits, past = self.decoder(self.decoder.embed(torch.tensor([[nxt]])), past=past)
            return self._finish(ids, emitted, on_text, "length", None)

    def _finish(self, ids, emitted, on_text, reason, stop):
        text = self.tokenizer.decode(ids)
        if on_text and len(text) > emitted:
            on_text(text[emitted:])
        return text, reason, stop, len(ids)


def sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> int:
    probs = torch.softmax(logits / temperature, dim=-1)
    order = torch.argsort(probs, descending=True)
    sorted_p = probs[order]
    keep = torch.cumsum(sorted_p, 0) - sorted_p < top_p
    kept = sorted_p * keep
    return int(order[torch.multinomial(kept / kept.sum(), 1, generator=gen)])


def as_stops(value) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value
    raise RequestError(400, "stop must be a string or a list of strings")


class Handler(BaseHTTPRequestHandler):
    server_version = "engine-test-server/1"
    state: "ServerState"

    def log_message(self, fmt, *args):  # quiet: the test suite reads stdout for the port
        if self.state.verbose:
            sys.stderr.write("engine-test-server: " + (fmt % args) + "\n")

    # ------------------------------------------------------------------ plumbing
    def send_json(self, status: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error_obj(self, e: RequestError) -> None:
        # vLLM's current shape; SGLang's is the same {"error": {"message": ...}}.
        self.send_json(e.status, {"error": {"message": e.message, "type": e.kind, "param": None, "code": e.status}})

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def sse(self, obj) -> None:
        try:
            self.wfile.write(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ClientClosed() from e

    def read_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        try:
            return json.loads(raw)
        except ValueError as e:
            raise RequestError(400, f"The request body is not JSON: {e}")

    def check_auth(self) -> None:
        key = self.state.api_key
        if key and self.headers.get("Authorization") != f"Bearer {key}":
            raise RequestError(401, "Unauthorized", "AuthenticationError")

    def take_failure(self) -> bool:
        fail = self.state.take_fail_next()
        if not fail:
            return False
        body = str(fail.get("body", "injected failure")).encode()
        self.send_response(int(fail.get("status", 500)))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.state.log(self.path, f"failed-{fail.get('status', 500)}", 0)
        return True

    # ------------------------------------------------------------------ routes
    def do_GET(self):
        if self.path == "/health":
            self.send_json(200, {"status": "ok"})
        elif self.path == "/v1/models":
            try:
                self.check_auth()
            except RequestError as e:
                return self.send_error_obj(e)
            self.send_json(200, {"object": "list", "data": [{"id": self.state.served_name, "object": "model",
                                                              "owned_by": "engine-test-server", "max_model_len": self.state.max_model_len}]})
        elif self.path == "/_test/log" and self.state.test_controls:
            self.send_json(200, self.state.requests)
        else:
            self.send_error_obj(RequestError(404, f"Not Found: {self.path}", "NotFoundError"))

    def do_POST(self):
        if self.path == "/_test/control" and self.state.test_controls:
            body = self.read_json()
            self.state.control(body)
            return self.send_json(200, {"ok": True})
        if self.path not in ("/v1/completions", "/generate"):
            return self.send_error_obj(RequestError(404, f"Not Found: {self.path}", "NotFoundError"))
        try:
            self.check_auth()
            if self.take_failure():
                return
            body = self.read_json()
            if self.path == "/v1/completions":
                self.completions(body)
            else:
                self.sglang_generate(body)
        except RequestError as e:
            self.state.log(self.path, f"error-{e.status}", 0)
            self.send_error_obj(e)
        except ClientClosed:
            pass

    def check_embeds(self, t: torch.Tensor, what: str) -> torch.Tensor:
        if t.ndim == 3 and t.shape[0] == 1:
            t = t.squeeze(0)
        if t.ndim != 2:
            raise RequestError(400, f"{what} must be of shape (seq_len, hidden_size), got {list(t.shape)}")
        dim = self.state.engine.cfg.dim
        if t.shape[1] != dim:
            raise RequestError(400, f"{what} has hidden size {t.shape[1]}, but the model's hidden size is {dim}")
        return t

    def check_length(self, n: int, max_tokens: int) -> None:
        # vLLM's rule: prompt + max_tokens may not exceed max_model_len.
        ctx = self.state.max_model_len
        if n + max_tokens > ctx:
            raise RequestError(400, f"This model's maximum context length is {ctx} tokens. However, you requested "
                                    f"{n + max_tokens} tokens ({n} in the prompt, {max_tokens} in the completion).")

    def run(self, embeds, max_tokens, params, stops, on_text):
        temperature = float(params.get("temperature") or 0.0)
        top_p = float(params.get("top_p") if params.get("top_p") is not None else 1.0)
        seed = params.get("seed")
        return self.state.engine.generate(embeds, max_tokens, temperature, top_p, seed, stops, on_text,
                                          self.state.token_delay, self.state.first_delay)

    def completions(self, body) -> None:
        st = self.state
        if body.get("model") not in (None, st.served_name):
            raise RequestError(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        pe = body.get("prompt_embeds")
        if pe is None:
            raise RequestError(400, "This test server only serves prompt_embeds requests (no text prompts).")
        if not st.prompt_embeds:
            raise RequestError(400, PROMPT_EMBEDS_DISABLED)
        if isinstance(pe, list):
            if len(pe) != 1:
                raise RequestError(400, "This test server takes one prompt per request.")
            pe = pe[0]
        try:
            raw = base64.b64decode(pe, validate=True)
            t = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
        except (binascii.Error, ValueError, RuntimeError) as e:
            raise RequestError(400, f"Failed to load prompt_embeds: {e}")
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise RequestError(400, "prompt_embeds must be a float tensor")
        t = self.check_embeds(t, "prompt_embeds")
        max_tokens = int(body.get("max_tokens") if body.get("max_tokens") is not None else 16)
        self.check_length(t.shape[0], max_tokens)
        stops = as_stops(body.get("stop"))
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(text, finish=None, stop=None):
            return {"id": rid, "object": "text_completion", "created": created, "model": st.served_name,
                    "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": stop}]}

        if body.get("stream"):
            self.start_sse()
            try:
                _, finish, stop, n = self.run(t, max_tokens, body, stops, lambda d: self.sse(chunk(d)))
                self.sse(chunk("", finish, stop))
                if (body.get("stream_options") or {}).get("include_usage"):
                    self.sse({"id": rid, "object": "text_completion", "created": created, "model": st.served_name, "choices": [],
                              "usage": {"prompt_tokens": int(t.shape[0]), "completion_tokens": n, "total_tokens": int(t.shape[0]) + n}})
                self.sse(b"[DONE]")
            except ClientClosed:
                st.log(self.path, "client-closed", -1)
                raise
            st.log(self.path, "ok", n)
            return
        text, finish, stop, n = self.run(t, max_tokens, body, stops, None)
        out = chunk(text, finish, stop)
        out["usage"] = {"prompt_tokens": int(t.shape[0]), "completion_tokens": n, "total_tokens": int(t.shape[0]) + n}
        self.send_json(200, out)
        st.log(self.path, "ok", n)

    def sglang_generate(self, body) -> None:
        st = self.state
        emb = body.get("input_embeds")
        if emb is None:
            raise RequestError(400, "This test server only serves input_embeds requests.")
        try:
            t = torch.tensor(emb, dtype=torch.float32)
        except (TypeError, ValueError) as e:
            raise RequestError(400, f"input_embeds is not a nested list of floats: {e}")
        t = self.check_embeds(t, "input_embeds")
        params = body.get("sampling_params") or {}
        max_tokens = int(params.get("max_new_tokens") if params.get("max_new_tokens") is not None else 128)
        self.check_length(t.shape[0], max_tokens)
        stops = as_stops(params.get("stop"))
        rid = uuid.uuid4().hex
        start = time.time()

        def meta(finish, stop, n):
            reason = None if finish is None else ({"type": "stop", "matched": stop} if finish == "stop" else {"type": "length", "length": n})
            return {"id": rid, "finish_reason": reason, "prompt_tokens": int(t.shape[0]), "completion_tokens": n,
                    "e2e_latency": time.time() - start}

        if body.get("stream"):
            self.start_sse()
            so_far = {"text": "", "n": 0}

            def on_text(d):
                so_far["text"] += d
                so_far["n"] += 1
                self.sse({"text": so_far["text"], "meta_info": meta(None, None, so_far["n"])})

            try:
                text, finish, stop, n = self.run(t, max_tokens, params, stops, on_text)
                self.sse({"text": text, "meta_info": meta(finish, stop, n)})
                self.sse(b"[DONE]")
            except ClientClosed:
                st.log(self.path, "client-closed", -1)
                raise
            st.log(self.path, "ok", n)
            return
        text, finish, stop, n = self.run(t, max_tokens, params, stops, None)
        self.send_json(200, {"text": text, "meta_info": meta(finish, stop, n)})
        st.log(self.path, "ok", n)


class ServerState:
    def __init__(self, engine: Engine, args):
        self.engine = engine
        self.served_name = args.served_model_name or engine.name
        self.api_key = args.api_key or os.environ.get("ENGINE_TEST_API_KEY") or None
        self.prompt_embeds = not args.no_prompt_embeds
        self.max_model_len = args.max_model_len or engine.cfg.context_length
        self.test_controls = args.test_controls
        self.verbose = args.verbose
        self.token_delay = 0.0
        self.first_delay = 0.0
        self.fail_next = None
        self.requests: List[dict] = []
        self._lock = threading.Lock()

    def control(self, body: dict) -> None:
        with self._lock:
            if "fail_next" in body:
                self.fail_next = body["fail_next"]
            if "token_delay_s" in body:
                self.token_delay = float(body["token_delay_s"])
            if "first_token_delay_s" in body:
                self.first_delay = float(body["first_token_delay_s"])

    def take_fail_next(self):
        with self._lock:
            f, self.fail_next = self.fail_next, None
            return f

    def log(self, path: str, outcome: str, tokens: int) -> None:
        with self._lock:
            self.requests.append({"path": path, "outcome": outcome, "tokens": tokens})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", required=True, help="arc-model/1 folder with weights.safetensors + weights.config.json")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--served-model-name", default=None, help="model id to answer to (default: the package name)")
    ap.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (or ENGINE_TEST_API_KEY)")
    ap.add_argument("--max-model-len", type=int, default=0,
                    help="longest prompt + max_tokens accepted, as vLLM's flag (default: the decoder's context_length)")
    ap.add_argument("--no-prompt-embeds", action="store_true", help="behave like vLLM started without --enable-prompt-embeds")
    ap.add_argument("--test-controls", action="store_true", help="enable /_test/control and /_test/log")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("ENGINE_TEST_THREADS", "1")))
    engine = Engine(args.package)
    Handler.state = ServerState(engine, args)
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    print(f"engine-test-server listening on http://{host}:{port}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
