"""The README's quick start, run as written: `make run`, then every command of its "Five minutes,
the whole loop" block in order (TOKEN replaced by the token the first one prints), then the run
followed to its end, then /studio/demo opened in headless Chromium until it shows the published
model's six stems. Prints how long each step took. Run it on a fresh clone, where it is what a
newcomer does; it uses the checkout's var/ (SQLite, broker, artifacts), so start from an empty one.

    .venv/bin/python bench/quick_start_check.py      (or: make quick-start-check)
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.deploy_check import wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
API = "http://127.0.0.1:8000"
CHROMIUM = os.environ.get("FABRIC_TEST_CHROMIUM", "/usr/bin/chromium")
BLOCK_TITLE = "**Five minutes, the whole loop**"


def quick_start_commands(readme: str) -> list[str]:
    """The shell commands of the README's quick-start block, continuation lines joined and
    comments dropped."""
    after = readme[readme.index(BLOCK_TITLE) :]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    if block is None:
        raise SystemExit(f"no ```sh block after {BLOCK_TITLE!r} in README.md")
    joined = block.group(1).replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def main() -> None:
    figures: dict[str, float] = {}
    started = time.monotonic()
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "quick-start-serve.log", "wb")  # noqa: SIM115 (the server's whole life)
    server = subprocess.Popen(["make", "run"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for("the API's /readyz", lambda: httpx.get(f"{API}/readyz").status_code == 200, 600)
        figures["make run, to /readyz"] = time.monotonic() - started
        token = run_id = None
        for written in quick_start_commands((ROOT / "README.md").read_text()):
            command = written.replace("TOKEN", token) if token is not None else written
            step = time.monotonic()
            done = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=1800)
            if done.returncode:
                raise SystemExit(f"{written}\nfailed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            figures[written[:72]] = time.monotonic() - step
            if "token create" in written:
                token = done.stdout.strip().splitlines()[-1]
            if "/runs" in written:
                run_id = httpx.Response(200, content=done.stdout).json()["id"]
        if run_id is None:
            raise SystemExit("the quick start started no run")

        headers = {"Authorization": f"Bearer {token}"}
        step = time.monotonic()
        terminal = ("succeeded", "failed", "cancelled")
        run = wait_for(
            f"run {run_id} to end",
            lambda: (r := httpx.get(f"{API}/runs/{run_id}", headers=headers).json())["status"] in terminal and r,
            1800,
            interval_s=3,
        )
        figures[f"run {run_id}, POST to {run['status']}"] = time.monotonic() - step
        if run["status"] != "succeeded":
            raise SystemExit(f"run {run_id} {run['status']}: {run['error']}")
        latest = httpx.get(f"{API}/models/latest")
        if latest.status_code != 200:
            models = httpx.get(f"{API}/models", headers=headers).json()
            raise SystemExit(f"no model is latest after the run: {models[0]['decision']} ({models[0]['reason']})")
        version = latest.json()["version"]
        print(f"run {run_id}: {run['metrics']['choice']['reason']}; published {version}")

        step = time.monotonic()
        stems = show_demo(version)
        figures["/studio/demo to six stems"] = time.monotonic() - step
        print(f"/studio/demo shows {version}'s stems: {', '.join(stems)}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    for what, seconds in figures.items():
        print(f"{seconds:8.0f} s  {what}")
    print(f"{time.monotonic() - started:8.0f} s  in all")


def show_demo(version: str) -> list[str]:
    """Opens /studio/demo as a visitor would and returns the stems it draws (it fails unless the
    page is ready, names the published model and draws six stems)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page()
        page.goto(f"{API}/studio/demo")
        page.wait_for_selector("body[data-ready=true], body[data-ready=error]", timeout=120_000)
        if page.get_attribute("body", "data-ready") != "true":
            raise SystemExit(f"/studio/demo failed: {page.text_content('#error')}")
        shown = page.text_content("#model") or ""
        stems = page.locator("polyline.stem").evaluate_all("lines => lines.map(l => l.dataset.stem)")
        page.screenshot(path=str(ROOT / "var" / "quick-start-demo.png"), full_page=True)
        browser.close()
    if version not in shown or len(stems) != 6:
        raise SystemExit(f"/studio/demo shows {shown!r} with stems {stems}")
    return stems


if __name__ == "__main__":
    sys.exit(main())
