"""The dashboard end to end, in Debian's Chromium driven by Playwright, against the real API
process on the real Postgres: log in, read the overview and data pages and check their numbers
against the database, open a run and watch it update live, press promote and roll back, log
out. Every page is saved as a screenshot under test-artifacts/screenshots/."""

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy.engine import make_url

from app.auth.service import create_token
from app.db.engine import session_scope
from app.training_runs import service as runs
from app.training_runs.models import TrainingRun
from app.training_runs.schemas import RunParameters
from tests.support import FETCH_HEADERS, create_postgres_database, drop_postgres_database, fixture_snapshot, reset_caches
from tests.support.runs import tiny_runs
from tests.support.servers import CHROMIUM, CHROMIUM_FLAGS, ROOT, api_process, wait_until
from training.contract import STEMS
from training.synthetic import synthetic_snapshots

pytestmark = pytest.mark.postgres

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The API on its own Postgres database, seeded through its own ingest endpoint, with two
    tiny trained runs (and their models, judged on three rendered songs too) and an admin token."""
    from training.render import render_song

    url = create_postgres_database(f"fabric_dash_{os.getpid()}")
    artifacts = tmp_path_factory.mktemp("artifacts")
    songs = tmp_path_factory.mktemp("evaluation-songs")
    for seed in (950, 951, 952):
        render_song(songs, seed, 8.0, 16_000)
    env = {
        "DATABASE_URL": url,
        "FABRIC_RATE_LIMIT_PER_S": "0",
        "FABRIC_ARTIFACTS_DIR": str(artifacts),
        "FABRIC_EVALUATION_SONGS_DIR": str(songs),
    }
    mp = pytest.MonkeyPatch()
    for name, value in env.items():
        mp.setenv(name, value)
    reset_caches()
    try:
        with api_process(env) as base:
            _seed(base, url)
            tiny_runs(artifacts, (4, 6), "tiny", worker="browser-test")
            with session_scope() as session:
                token, _ = create_token("dashboard-admin", "admin", db_session=session)
            yield {"base": base, "db": url.replace("postgresql+psycopg://", "postgresql://"), "token": token}
    finally:
        mp.undo()
        reset_caches()
        drop_postgres_database(url)


def _seed(base: str, url: str) -> None:
    snapshots = synthetic_snapshots(60, seed=7)
    snapshots += [
        fixture_snapshot(name)
        for name in ("snapshot-with-ground-truth", "snapshot-mono-no-ground-truth", "snapshot-with-corrections-and-nan")
        for _ in range(3)
    ]
    with httpx.Client(base_url=base, headers=FETCH_HEADERS, timeout=30) as client:
        for snapshot in snapshots:
            assert client.post("/stem-separation", content=json.dumps(snapshot)).status_code == 201
        assert client.post("/stem-separation", content=json.dumps(snapshots[0])).status_code == 200  # a retry
        assert client.post("/stem-separation", content=b"[{oops").status_code == 400
        broken = fixture_snapshot("snapshot-mono-no-ground-truth")
        broken["metadata"]["confidence"] = 7
        assert client.post("/stem-separation", content=json.dumps(broken)).status_code == 422
    # Spread the first third over earlier days, so the per-day chart has a shape.
    with psycopg.connect(_plain(url), autocommit=True) as connection:
        for index, snapshot in enumerate(snapshots[:20]):
            connection.execute(
                "UPDATE snapshots SET received_at = received_at - make_interval(days => %s) WHERE id = %s",
                (1 + index % 5, uuid.UUID(snapshot["id"])),
            )


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sql(site, query: str, *params):
    with psycopg.connect(_plain(site["db"])) as connection:
        return connection.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (make test installs Debian's chromium package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, site):
    context = chromium.new_context(viewport={"width": 1366, "height": 900}, base_url=site["base"])
    page = context.new_page()
    errors: list[str] = []
    # A refused login is answered 401 on purpose; anything else the console reports is a fault.
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" and "status of 401" not in message.text else None,
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"the browser reported errors: {errors}"


def shot(page: Page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def log_in(page: Page, token: str, path: str = "/dashboard") -> None:
    page.goto(path)
    assert "/dashboard/login" in page.url
    page.fill("#token", token)
    page.click("form[action='/dashboard/login'] button[type=submit]")


def n(text: str) -> int:
    return int(text.replace(",", "").strip())


def test_log_in_and_read_the_overview_against_the_database(page, site):
    page.goto("/dashboard")
    assert "/dashboard/login" in page.url
    shot(page, "01-login")
    page.fill("#token", "pf_wrong")
    page.click("form[action='/dashboard/login'] button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("unknown or revoked")
    page.fill("#token", site["token"])
    page.click("form[action='/dashboard/login'] button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")
    shot(page, "02-overview")

    ((total, with_truth, with_corrections, unlabelled, duplicates),) = sql(
        site,
        """
        SELECT count(*), count(*) FILTER (WHERE has_ground_truth), count(*) FILTER (WHERE correction_count > 0),
               count(*) FILTER (WHERE NOT has_ground_truth AND correction_count = 0),
               sum(duplicates_absorbed) FROM snapshots""",
    )
    assert n(page.inner_text("#stat-total")) == total == 69
    assert page.inner_text("#stat-ground-truth") == f"{100 * with_truth / total:.1f}%"
    assert page.inner_text("#stat-corrections") == f"{100 * with_corrections / total:.1f}%"
    assert page.inner_text("#stat-unlabelled") == f"{100 * unlabelled / total:.1f}%" and unlabelled > 0
    assert n(page.inner_text("#stat-duplicates")) == duplicates == 1
    rejected = dict(sql(site, "SELECT reason_type, count(*) FROM quarantine GROUP BY reason_type"))
    assert n(page.inner_text("#stat-rejected")) == sum(rejected.values()) == 2
    for reason, count in rejected.items():
        assert page.get_attribute(f"#rejections li[data-label='{reason}']", "data-count") == str(count)
    per_day = dict(sql(site, "SELECT to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*) FROM snapshots GROUP BY 1"))
    shown = {
        row.get_attribute("data-label"): int(row.get_attribute("data-count"))
        for row in page.locator("#chart-per-day tr[data-label]").all()
    }
    assert {day: count for day, count in shown.items() if count} == per_day
    assert len(shown) == 6  # five earlier days and today, each shown even when empty

    # The range filter: the last 24 hours leave out the snapshots moved to earlier days.
    page.select_option("select[name=range]", "24h")
    page.click("#filters button[type=submit]")
    ((recent,),) = sql(site, "SELECT count(*) FROM snapshots WHERE received_at >= now() - interval '24 hours'")
    expect(page.locator("#stat-total")).to_have_text(f"{recent:,}")
    assert recent < total
    shot(page, "03-overview-last-24h")

    # A rejection reason links into the quarantine, filtered by it.
    page.click("#rejections a >> text=malformed_json")
    expect(page.locator("h1")).to_contain_text("malformed_json")
    assert page.locator("#quarantine-table tr[data-item]").count() == rejected["malformed_json"]
    shot(page, "04-quarantine")


def test_data_page_matches_the_database(page, site):
    log_in(page, site["token"], "/dashboard/data")
    expect(page.locator("h1")).to_have_text("Data")
    shot(page, "05-data")

    def bars(chart: str) -> dict[str, int]:
        return {
            li.get_attribute("data-label"): int(li.get_attribute("data-count"))
            for li in page.locator(f"#{chart} li[data-label]").all()
        }

    assert bars("chart-classification") == dict(sql(site, "SELECT classification, count(*) FROM snapshots GROUP BY 1"))
    assert bars("chart-sample-rate") == {
        str(k): v for k, v in sql(site, "SELECT sample_rate, count(*) FROM snapshots GROUP BY 1")
    }
    assert bars("chart-key-mode") == {
        f"{k} {m or 'unknown'}": c for k, m, c in sql(site, "SELECT key, mode, count(*) FROM snapshots GROUP BY 1, 2")
    }
    assert bars("chart-corrections-type") == dict(
        sql(site, "SELECT correction_type, count(*) FROM snapshot_corrections GROUP BY 1")
    )
    ((vocals,),) = sql(site, "SELECT count(*) FROM snapshots WHERE gt_vocals IS NOT NULL")
    assert bars("chart-ground-truth")["vocals"] == vocals
    ((stereo_short,),) = sql(site, "SELECT count(*) FROM snapshots WHERE length(stereo) / 4 BETWEEN 1 AND 99")
    assert int(page.inner_text("#stream-lengths tr[data-stream='stereo'] td[data-label='1–99']")) == stereo_short
    ((latest_dataset,),) = sql(site, "SELECT max(id) FROM datasets")
    expect(page.locator("#latest-dataset")).to_contain_text(f"Dataset {latest_dataset}")

    # On a phone the same page stays readable: nothing wider than the screen but scrolling tables.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/dashboard/data")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "06-data-phone")


def test_open_a_run_promote_roll_back_and_log_out(page, site):
    log_in(page, site["token"], "/dashboard/training")
    expect(page.locator("h1")).to_have_text("Training")
    shot(page, "07-training")
    models = sql(site, "SELECT id, run_id FROM stem_models ORDER BY id")
    assert len(models) == 2
    champion = _champion(site)

    # Open the run whose model is not the champion, and promote that model from its page.
    model_id, run_id = next((m, r) for m, r in models if m != champion)
    page.click(f"#runs-table tr[data-run='{run_id}'] a")
    expect(page.locator("h1")).to_contain_text(f"Run #{run_id}")
    expect(page.locator("#run-status")).to_have_text("succeeded")
    ((history,),) = sql(site, "SELECT json_array_length(history::json) FROM training_runs WHERE id = %s", run_id)
    assert page.locator("#chart-loss polyline").count() == 2
    assert len(page.get_attribute("#chart-loss polyline.s1", "points").split()) == history
    ((error,),) = sql(site, "SELECT (metrics::json #>> '{model,level_error_db}')::float FROM training_runs WHERE id = %s", run_id)
    assert page.inner_text("#metrics tr[data-stem='overall'] td[data-baseline='model']") == f"{error:,.2f}"
    for baseline in ("ridge", "train_median", "silence", "mix_copy"):
        assert page.inner_text(f"#metrics tr[data-stem='overall'] td[data-baseline='{baseline}']") != "–"
    expect(page.locator("#margin")).to_contain_text("95% interval")
    ((choice,),) = sql(site, "SELECT metrics::json -> 'choice' FROM training_runs WHERE id = %s", run_id)
    assert set(choice["candidates"]) == {"tiny", "ridge"}
    for name, figures in choice["candidates"].items():
        row = page.locator(f"#candidates tr[data-candidate='{name}'] td")
        assert row.nth(1).inner_text() == f"{figures['validation_error_db']:,.2f}"
        assert row.nth(2).inner_text() == f"{figures['test_error_db']:,.2f}"
        share = figures["validation_audio_share"]  # the run has evaluation songs
        assert row.nth(4).inner_text() == ("–" if share is None else f"{share:,.2f}")
    expect(page.locator("#choice")).to_contain_text(f"is {choice['predictor']['name']}: {choice['selected']} ")
    expect(page.locator(f"#models-table tr[data-model='{model_id}'] td.predictor")).to_contain_text(choice["predictor"]["name"])
    ((corrections,),) = sql(site, "SELECT metrics::json -> 'corrections' FROM training_runs WHERE id = %s", run_id)
    expect(page.locator("#corrections")).to_contain_text(
        f"trained with {corrections['corrections_only_snapshots']} snapshots whose only label is a correction"
    )
    expect(page.locator("#corrections")).to_contain_text(f"of the {corrections['held_out_cells']} cells")
    expect(page.locator("#audio tr[data-stem='vocals']")).to_be_visible()
    ((audio,),) = sql(site, "SELECT metrics::json -> 'audio' FROM training_runs WHERE id = %s", run_id)
    assert audio["headline"]["songs"] + audio["validation_songs"] == 3  # the three songs: a report half, a deciding half
    expect(page.locator("#audio-headline")).to_contain_text(f"Over {audio['headline']['songs']} songs")
    expect(page.locator("#audio-applied")).to_contain_text(f"{audio['validation_songs']} validation songs")
    for stem in audio["applied_stems"]:
        expect(page.locator("#audio-applied")).to_contain_text(stem)
    shot(page, "08-run")
    ((decision,),) = sql(site, "SELECT decision FROM stem_models WHERE id = %s", model_id)
    if decision == "rejected":  # the gate said no: promoting it needs a reason, kept in the audit
        page.fill(f"input.force-reason[data-model='{model_id}']", "browser test: promote anyway")
    page.click(f"button.promote[data-model='{model_id}']")
    expect(page.locator("#notice")).to_contain_text(f"Model {model_id} is now latest")
    expect(page.locator("#champion-badge")).to_be_visible()
    assert _champion(site) == model_id
    # What Studio downloads follows within its recheck interval.
    ((version,),) = sql(site, "SELECT version FROM stem_models WHERE id = %s", model_id)
    wait_until(lambda: httpx.get(f"{site['base']}/models/latest").json()["version"] == version, 5, "Studio to see the promotion")
    shot(page, "09-run-promoted")

    # Promote the other model from the training page, then roll back: the one before is latest again.
    other_id = next(m for m, _ in models if m != model_id)
    page.goto("/dashboard/training")
    if decision == "rejected":
        expect(page.locator("#promotions tr.forced").first).to_contain_text("browser test: promote anyway")
    ((other_decision,),) = sql(site, "SELECT decision FROM stem_models WHERE id = %s", other_id)
    if other_decision == "rejected":
        page.fill(f"input.force-reason[data-model='{other_id}']", "browser test: the other one")
    page.click(f"button.promote[data-model='{other_id}']")
    expect(page.locator(f"#models-table tr[data-model='{other_id}'] #champion-badge")).to_be_visible()
    assert _champion(site) == other_id
    page.click("#rollback")
    expect(page.locator("#notice")).to_contain_text(f"model {model_id} is latest again")
    assert _champion(site) == model_id
    expect(page.locator(f"#models-table tr[data-model='{model_id}'] #champion-badge")).to_be_visible()
    shot(page, "10-rolled-back")

    page.click("#logout")
    expect(page.locator("#logged-out")).to_be_visible()
    shot(page, "11-logged-out")
    page.goto("/dashboard/training")
    assert "/dashboard/login" in page.url


def test_a_running_run_updates_without_a_reload(page, site):
    with session_scope() as session:
        run = runs.create_run(RunParameters(run_label="live", epochs=10, candidates=["tiny"]), db_session=session)
        run.status, run.stage, run.epoch = "running", "training", 1
        run.history = [{"epoch": 0, "loss": 0.05, "val_loss": 0.06, "learning_rate": 0.001}]
        run_id = run.id
    log_in(page, site["token"], f"/dashboard/runs/{run_id}")
    expect(page.locator("#run-epoch")).to_have_text("1")
    page.evaluate("window.__stillTheSamePage = true")
    with session_scope() as session:  # what a worker writes after its next epoch
        run = session.get(TrainingRun, run_id)
        run.epoch, run.history = 2, [*run.history, {"epoch": 1, "loss": 0.04, "val_loss": 0.05, "learning_rate": 0.001}]
    expect(page.locator("#run-epoch")).to_have_text("2", timeout=10_000)
    assert page.evaluate("window.__stillTheSamePage") is True
    assert len(page.get_attribute("#chart-loss polyline.s1", "points").split()) == 2
    shot(page, "12-run-live")
    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        run.status, run.stage = "cancelled", "training"
    # Once it stops, the page reloads itself to show the final state.
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=10_000)


def _champion(site) -> int | None:
    rows = sql(site, "SELECT model_id FROM model_promotions ORDER BY id DESC LIMIT 1")
    return rows[0][0] if rows else None


def test_the_studio_kit_demo_shows_the_loop(page: Page, site):
    """/studio/demo, no external assets: the bundled song decoded, its snapshot built by the kit in
    a worker and stored, the latest model's files checked and loaded with tfjs through the kit, its
    six stems' levels drawn over a time axis, and Studio's filter stems played with and without the
    model's gains, switched while playing."""
    if httpx.get(f"{site['base']}/models/latest").status_code == 404:  # neither tiny model passed the gate
        from app.stem_models import service as stem_models

        with session_scope() as session:
            newest = stem_models.get_all(limit=1, db_session=session)[0]
            stem_models.promote(newest.id, "test", "the demo needs a latest model", force=True, db_session=session)
        time.sleep(1)  # the API looks for a new promotion every 0.5 s
    latest = httpx.get(f"{site['base']}/models/latest").json()
    stored_before = sql(site, "SELECT count(*) FROM snapshots")[0][0]
    outside: list[str] = []
    page.on(
        "request", lambda request: outside.append(request.url) if not request.url.startswith(("blob:", site["base"])) else None
    )
    page.goto("/studio/demo")
    page.wait_for_selector("body[data-ready=true], body[data-ready=error]", timeout=120_000)
    assert page.get_attribute("body", "data-ready") == "true", page.text_content("#error")
    expect(page.locator("#built")).to_contain_text("24.0 s")
    expect(page.locator("#posted")).to_have_text("201 stored")
    expect(page.locator("#model")).to_contain_text(latest["version"])
    assert page.locator("polyline.stem").count() == 6
    assert sorted(page.locator("polyline.stem").evaluate_all("lines => lines.map(l => l.dataset.stem)")) == sorted(STEMS)
    assert page.locator("text.time").all_text_contents()[:3] == ["0 s", "5 s", "10 s"]
    assert sql(site, "SELECT count(*) FROM snapshots")[0][0] == stored_before + 1
    page.click("#play")
    expect(page.locator("body")).to_have_attribute("data-playing", "gained")
    page.uncheck("#gains")  # while playing
    expect(page.locator("body")).to_have_attribute("data-playing", "filters")
    shot(page, "studio-demo")
    page.click("#play")
    expect(page.locator("body")).not_to_have_attribute("data-playing", "filters")
    assert outside == []
