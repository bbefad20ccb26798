"""A real OpenAI-compatible teacher for tests: llama.cpp's server (llama-cpp-python[server])
serving SmolLM2-135M-Instruct on loopback, behind a small counting proxy that records every
request it is sent and every request it forwards (the ones a paid API would bill)."""
import hashlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scoder.models import GGUF_FILE, smollm2_gguf_dir

KEY_ENV, KEY = "SCODER_TEST_LLAMA_KEY", "test-secret-key"
ALIAS = "smollm2"
CHAT = "/v1/chat/completions"
SKIP_REASON = ("llama_cpp is not importable: pip install 'llama-cpp-python[server]==0.3.36' "
               "(CMAKE_ARGS=-DGGML_NATIVE=OFF) to run these tests")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama.cpp's OpenAI-compatible server as a subprocess on a fixed port."""

    def __init__(self, log_path):
        self.port, self.log_path, self.proc = free_port(), log_path, None

    def start(self, timeout=90):
        cmd = [sys.executable, "-m", "llama_cpp.server",
               "--model", str(smollm2_gguf_dir() / GGUF_FILE), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_threads", "1",
               "--n_ctx", "2048", "--api_key", KEY, "--verbose", "False"]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_path, "a"),
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, open(self.log_path).read()[-2000:]
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/models",
                                             headers={"Authorization": f"Bearer {KEY}"})
                urllib.request.urlopen(req, timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError("llama.cpp server did not start")

    def stop(self, crash=False):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill() if crash else self.proc.terminate()
            self.proc.wait(timeout=30)


class CountingProxy(ThreadingHTTPServer):
    """Forwards to the server and logs (path, body digest, status, forwarded) per request.

    ``fail_next`` answers that many requests with 503 itself; ``after_answer`` is called
    with the number of answered chat requests after each one; ``hold_after = n`` holds
    every chat request that arrives once n have been answered (``held`` counts them),
    unforwarded, until ``release()`` answers them 503: a kill meanwhile finds the
    client waiting on a request the server never saw.  ``in_flight``: requests
    forwarded and not yet answered."""
    daemon_threads = True

    def __init__(self, upstream_port):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port, self.log, self.fail_next, self.after_answer = upstream_port, [], 0, None
        self.hold_after, self.held, self.in_flight, self._released = None, 0, 0, threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def chats(self, status=None):
        return [e for e in self.log
                if e["path"] == CHAT and (status is None or e["status"] == status)]

    def forwarded(self, since: int = 0) -> list[str]:
        """Body digests of the chat requests sent on to the server (log entries from ``since``)."""
        return [e["body"] for e in self.log[since:] if e["path"] == CHAT and e["forwarded"]]

    def release(self):
        """Answer the held requests with 503 and stop holding."""
        self.hold_after = None
        self._released.set()

    def _hold(self) -> bool:
        with self.lock:
            if self.hold_after is None or len(self.chats(200)) < self.hold_after:
                return False
            self.held += 1
        self._released.wait()
        return True


class _ProxyHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _relay(self):
        proxy: CountingProxy = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        entry = {"path": self.path, "body": hashlib.sha256(json.dumps(
            json.loads(body), sort_keys=True).encode()).hexdigest() if body else None}
        with proxy.lock:
            inject = proxy.fail_next > 0
            proxy.fail_next -= inject
        if self.path == CHAT and proxy._hold():
            inject = True
        status, payload, forwarded = 503, b'{"error": "injected"}', False
        if not inject:
            forwarded = True
            with proxy.lock:
                proxy.in_flight += 1
            try:
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=300)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization", "content-type")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                status, payload = resp.status, resp.read()
            except OSError:
                status, payload = 502, b'{"error": "upstream down"}'
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client was killed meanwhile
        with proxy.lock:
            proxy.log.append({**entry, "status": status, "forwarded": forwarded})
            proxy.in_flight -= forwarded
            answered = len(proxy.chats(200))
        if status == 200 and self.path == CHAT and proxy.after_answer:
            proxy.after_answer(answered)

    do_GET = do_POST = _relay


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The llama.cpp server for one test module (import this fixture into the module)."""
    srv = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log")
    srv.start()
    yield srv
    srv.stop()
