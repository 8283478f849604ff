"""The Studio kit's exporter in a real headless Chromium (Debian's, through Playwright): a page on
Studio's origin imports the kit from the API, queues 30 Studio-shaped snapshots and navigates
away without flush(); what was still pending is beaconed and kept in localStorage, and the next
page load of Studio sends it. Every snapshot ends up stored exactly once, with the API up, and
with the API unreachable for the first 10 s."""

import functools
import json
import os
import threading
import time
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy.engine import make_url

from tests.support import FIXTURE_NAMES, create_postgres_database, drop_postgres_database, fixture_snapshot
from tests.support.servers import TcpProxy, api_process, free_port, wait_until
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_FLAGS

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PAGE = """<!doctype html><meta charset="utf-8"><title>Studio</title>
<script type="module">
import {{ createExporter }} from "{api}/studio/prime-fabric.js";
const exporter = createExporter({{ url: "{api}/stem-separation" }});
window.kitLoaded = true;
while (!window.go) await new Promise((resolve) => setTimeout(resolve, 20));
const snapshots = await (await fetch("snapshots.json")).json();
for (const snapshot of snapshots) exporter.enqueue(snapshot);
await new Promise((resolve) => setTimeout(resolve, {linger_ms}));
location.href = "next.html";  // away, without flush()
</script>"""
NEXT = """<!doctype html><meta charset="utf-8"><title>Studio, later</title>
<script type="module">
import {{ createExporter }} from "{api}/studio/prime-fabric.js";
createExporter({{ url: "{api}/stem-separation" }});  // sends what an earlier page left
window.resumed = true;
</script>"""


@pytest.fixture
def studio_site(tmp_path):
    """A static site standing for Studio, on its own origin."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def stored_ids(database_url: str) -> list[str]:
    plain = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as connection:
        return [str(row[0]) for row in connection.execute("SELECT id FROM snapshots")]


@pytest.mark.parametrize("outage_s", [0, 10])
def test_queued_snapshots_survive_leaving_the_page(studio_site, tmp_path, outage_s):
    directory, studio_origin = studio_site
    snapshots = [fixture_snapshot(FIXTURE_NAMES[i % 3], id=str(uuid.uuid4())) for i in range(30)]
    assert all(45_000 <= len(json.dumps(s)) <= 150_000 for s in snapshots)
    (directory / "snapshots.json").write_text(json.dumps(snapshots))
    database = create_postgres_database(f"fabric_kit_{os.getpid()}_{outage_s}")
    env = {"DATABASE_URL": database, "FABRIC_RATE_LIMIT_PER_S": "0", "FABRIC_CORS_ALLOWED_ORIGINS": json.dumps([studio_origin])}
    try:
        with api_process(env, log_path=tmp_path / "api.log") as base, TcpProxy(int(base.rsplit(":", 1)[1])) as proxy:
            api = f"http://127.0.0.1:{proxy.port}"
            env["FABRIC_PUBLIC_BASE_URLS"] = json.dumps([api])
            (directory / "page.html").write_text(PAGE.format(api=api, linger_ms=300))
            (directory / "next.html").write_text(NEXT.format(api=api))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                page = browser.new_page()
                page.goto(f"{studio_origin}/page.html")
                page.wait_for_function("window.kitLoaded === true", timeout=20_000)
                if outage_s:
                    proxy.block()  # the network fails: fetches and beacons get nowhere
                page.evaluate("window.go = true")
                page.wait_for_url(f"{studio_origin}/next.html", timeout=30_000)
                if outage_s:
                    time.sleep(outage_s)
                    proxy.unblock()
                    page.goto(f"{studio_origin}/next.html")  # Studio opened again later
                page.wait_for_function("window.resumed === true", timeout=20_000)
                wait_until(lambda: len(stored_ids(database)) >= len(snapshots), 90, "every snapshot to be stored")
                time.sleep(2)  # anything still in flight would show as an extra row now
                browser.close()
        ids = stored_ids(database)
        assert sorted(ids) == sorted(s["id"] for s in snapshots)  # each once: the id is the key, none missing
    finally:
        drop_postgres_database(database)
