"""Runs published weights in the real @tensorflow/tfjs 4.22 on Node, served over HTTP."""

import functools
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

JS_DIR = Path(__file__).resolve().parent / "js"


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def tfjs_predict(model_json_url: str, features: np.ndarray, workdir: Path) -> tuple[np.ndarray, dict]:
    """Predictions of the graph model at `model_json_url`, computed by tfjs in Node."""
    inputs, outputs = workdir / "inputs.json", workdir / "outputs.json"
    inputs.write_text(json.dumps({"shape": list(features.shape), "data": features.ravel().tolist()}))
    subprocess.run(
        ["node", str(JS_DIR / "predict.mjs"), model_json_url, str(inputs), str(outputs)],
        check=True,
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(outputs.read_text())
    return np.array(result["data"], dtype=np.float32).reshape(result["shape"]), result
