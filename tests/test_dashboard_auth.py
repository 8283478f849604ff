"""The dashboard's door: login with an admin token only, a session cookie that scripts cannot
read, logout that really ends the session, CSRF on every button, no open redirects."""

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from app.auth.models import AdminSession
from app.auth.service import create_token, hash_token, revoke_token
from app.db.engine import session_scope
from app.main import create_app
from app.stem_models.models import ModelPromotion


@pytest.fixture
def tokens(db):
    with session_scope() as session:
        session.execute(delete(ModelPromotion))  # "nothing to roll back to" whatever ran before
        admin, _ = create_token("root", "admin", db_session=session)
        operator, _ = create_token("ops", "operator", db_session=session)
        revoked, row = create_token("old", "admin", db_session=session)
        revoke_token(row.id, db_session=session)
    return {"admin": admin, "operator": operator, "revoked": revoked}


@pytest.fixture
def browser(db):
    """A client that behaves like a browser on this site: cookies kept, no redirects followed."""
    with TestClient(create_app(), base_url="http://fabric.test", follow_redirects=False) as client:
        yield client


ORIGIN = {"Origin": "http://fabric.test"}


def log_in(browser, token: str, next_path: str = "/dashboard"):
    return browser.post("/dashboard/login", data={"token": token, "next": next_path}, headers=ORIGIN)


def csrf_of(browser, path: str = "/dashboard/training") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', browser.get(path).text).group(1)


def test_pages_need_a_login_and_come_back_after_it(browser, tokens):
    answer = browser.get("/dashboard/data?range=7d")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fdata%3Frange%3D7d"
    assert browser.get("/dashboard/runs/1/live").status_code == 303
    login = log_in(browser, tokens["admin"], "/dashboard/data?range=7d")
    assert login.status_code == 303 and login.headers["location"] == "/dashboard/data?range=7d"
    page = browser.get("/dashboard/data?range=7d")
    assert page.status_code == 200 and "Key and mode" in page.text


def test_the_session_cookie_is_httponly_samesite_and_secure_over_tls(db, tokens):
    with TestClient(create_app(), base_url="http://fabric.test", follow_redirects=False) as plain:
        cookie = log_in(plain, tokens["admin"]).headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    with TestClient(create_app(), base_url="https://fabric.test", follow_redirects=False) as tls:
        answer = tls.post("/dashboard/login", data={"token": tokens["admin"]}, headers={"Origin": "https://fabric.test"})
    assert "Secure" in answer.headers["set-cookie"] and "HttpOnly" in answer.headers["set-cookie"]


@pytest.mark.parametrize(
    ("which", "status", "says"),
    [
        ("operator", 403, "needs an admin token"),
        ("revoked", 401, "unknown or revoked"),
        ("nonsense", 401, "unknown or revoked"),
    ],
)
def test_only_live_admin_tokens_log_in(browser, tokens, which, status, says):
    answer = log_in(browser, tokens.get(which, "pf_nonsense"))
    assert answer.status_code == status and says in answer.text
    assert "set-cookie" not in answer.headers


def test_login_never_redirects_off_site(browser, tokens):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "/stats/overview"):
        assert log_in(browser, tokens["admin"], target).headers["location"] == "/dashboard"


def test_a_login_form_posted_from_another_site_is_refused(browser, tokens):
    answer = browser.post("/dashboard/login", data={"token": tokens["admin"]}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_logout_ends_the_session_on_the_server(browser, tokens):
    log_in(browser, tokens["admin"])
    cookie = browser.cookies.get("pf_session")
    answer = browser.post("/dashboard/logout", data={"csrf_token": csrf_of(browser)}, headers=ORIGIN)
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/login?logged_out=1"
    assert 'pf_session=""' in answer.headers["set-cookie"]
    # The old cookie, replayed, opens nothing: the row is gone.
    browser.cookies.set("pf_session", cookie, domain="fabric.test")
    assert browser.get("/dashboard").status_code == 303
    with session_scope() as session:
        assert session.scalar(select(AdminSession).where(AdminSession.session_hash == hash_token(cookie))) is None


def test_revoking_the_token_ends_its_sessions(browser, tokens):
    log_in(browser, tokens["admin"])
    assert browser.get("/dashboard").status_code == 200
    with session_scope() as session:
        session_row = session.scalar(
            select(AdminSession).where(AdminSession.session_hash == hash_token(browser.cookies["pf_session"]))
        )
        revoke_token(session_row.token_id, db_session=session)
    assert browser.get("/dashboard").status_code == 303


def test_buttons_need_the_csrf_token_and_this_origin(browser, tokens):
    log_in(browser, tokens["admin"])
    csrf = csrf_of(browser)
    for data, headers in [
        ({}, ORIGIN),
        ({"csrf_token": "forged"}, ORIGIN),
        ({"csrf_token": csrf}, {"Origin": "https://evil.example"}),
    ]:
        for path in ("/dashboard/models/rollback", "/dashboard/models/1/promote", "/dashboard/logout"):
            answer = browser.post(path, data=data, headers=headers)
            assert answer.status_code == 403, (path, data, headers)
    # With both, the button works (nothing to roll back to: said, not a 500).
    answer = browser.post("/dashboard/models/rollback", data={"csrf_token": csrf}, headers=ORIGIN)
    assert answer.status_code == 303 and "Nothing+to+roll+back" in answer.headers["location"]
    assert browser.post("/dashboard/models/999999/promote", data={"csrf_token": csrf}, headers=ORIGIN).status_code == 404
    with session_scope() as session:
        assert session.scalars(select(ModelPromotion)).all() == []


def test_the_cookie_reads_the_api_but_never_changes_anything(browser, tokens):
    assert browser.get("/stats/overview").status_code == 401
    log_in(browser, tokens["admin"])
    assert browser.get("/stats/overview").status_code == 200  # the dashboard's "source" links
    assert browser.get("/models").status_code == 200
    # A change through the API needs a bearer token: a cross-site form cannot ride the cookie.
    assert browser.post("/models/rollback").status_code == 401
    assert browser.post("/runs", json={"runLabel": "x"}).status_code == 401


def test_pages_forbid_framing_and_foreign_scripts(browser, tokens):
    log_in(browser, tokens["admin"])
    for path in ("/dashboard", "/dashboard/data", "/dashboard/training", "/dashboard/quarantine", "/dashboard/login"):
        headers = browser.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"


def test_every_asset_is_served_from_here(browser, tokens):
    log_in(browser, tokens["admin"])
    for path in ("/dashboard", "/dashboard/data", "/dashboard/training"):
        html = browser.get(path).text
        for reference in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert not re.match(r"^(https?:)?//", reference), f"{path} refers to {reference}"
        for asset in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', html):
            assert browser.get(asset).status_code == 200


def test_filter_dates_that_are_not_dates_or_out_of_range_are_said_on_the_page(browser, tokens):
    log_in(browser, tokens["admin"])
    for query, says in (("since=yesterday", "is not a date"), ("until=0001-01-01", "between 2000 and 2100")):
        page = browser.get(f"/dashboard?{query}")
        assert page.status_code == 200 and says in page.text, query
