"""The Studio kit: the browser module Studio imports from this service (static/), with the hashes
that let Studio pin it (ETag, Subresource Integrity)."""

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
KIT_FILES = {
    "prime-fabric.js": "text/javascript; charset=utf-8",
    "prime-fabric.d.ts": "application/typescript; charset=utf-8",
    "snapshot-worker.js": "text/javascript; charset=utf-8",  # buildSnapshotInWorker's module worker
    # The /studio/demo page and what it loads (tfjs 4.22 as its ES module build: no external assets).
    "demo.html": "text/html; charset=utf-8",
    "demo.js": "text/javascript; charset=utf-8",
    "demo.css": "text/css; charset=utf-8",
    "demo-song.flac": "audio/flac",  # 24 s rendered by sampled instruments
    "vendor/tfjs-4.22.0.fesm.min.js": "text/javascript; charset=utf-8",
}
KIT_PATH = "/studio/prime-fabric.js"


@dataclass(frozen=True)
class KitFile:
    body: bytes
    media_type: str
    etag: str
    integrity: str  # for <script integrity> / import maps / fetch(..., {integrity})


@cache
def kit_file(name: str) -> KitFile:
    """A file of the kit, read once per process (they change only with a deploy)."""
    body = (STATIC / name).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
    return KitFile(body, KIT_FILES[name], etag, integrity)
