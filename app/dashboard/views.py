"""The dashboard's pages. Thin: each page asks the stats, runs and models services for its
figures and renders a template. A login with an admin token opens a server-side session
(cookie: HttpOnly, SameSite=Lax, Secure over TLS); every form that changes something carries
the session's CSRF token and must come from this origin."""

import hmac
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import StrictUndefined

from app.auth.dependencies import SESSION_COOKIE, dashboard_session
from app.auth.models import AdminSession, ApiToken
from app.auth.service import allows, authenticate, end_session, start_session
from app.dashboard import charts
from app.datasets import service as datasets
from app.datasets.schemas import DatasetView
from app.db.base import RowId
from app.db.engine import session_scope
from app.quarantine.schemas import QuarantineView
from app.quarantine.service import list_quarantined
from app.stats import service as stats
from app.stem_models import service as stem_models
from app.stem_models.models import StemModel
from app.stem_models.schemas import PromotionRecord
from app.training_runs import service as runs
from app.training_runs.models import ACTIVE_STATUSES
from app.training_runs.schemas import RunView
from training.contract import STEMS

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# A name a page uses that its view does not give (a renamed field, a typo) fails the page, and
# the tests that render it, rather than rendering as nothing.
templates.env.undefined = StrictUndefined
templates.env.globals.update(
    peak=charts.peak, share=charts.share, polyline=charts.polyline, bounds=charts.bounds, number=charts.number, stems=STEMS
)
static_files = StaticFiles(directory=HERE / "static")

router = APIRouter(prefix="/dashboard", include_in_schema=False)
# Nothing on these pages comes from elsewhere, and nothing may frame them.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """Raised by `admin` when there is no live session: answered with a redirect to log in."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class CsrfRejected(Exception):
    pass


def admin(request: Request) -> tuple[AdminSession, ApiToken]:
    found = dashboard_session(request)
    if found is None:
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return found


def checked_form(
    request: Request, csrf_token: str = Form("", max_length=128), login: tuple[AdminSession, ApiToken] = Depends(admin)
) -> tuple[AdminSession, ApiToken]:
    """A form post from this origin carrying this session's CSRF token."""
    if not _same_origin(request) or not hmac.compare_digest(csrf_token, login[0].csrf_token):
        raise CsrfRejected()
    return login


async def login_redirect(_request: Request, error: LoginRequired) -> Response:
    return RedirectResponse(f"/dashboard/login?{urlencode({'next': error.next_path})}", status_code=303)


async def csrf_rejected(request: Request, _error: CsrfRejected) -> Response:
    return _page(
        request,
        "message.html",
        {"title": "Form expired", "message": "This form is from another page or an older login. Go back, reload and try again."},
        status_code=403,
    )


def install(app) -> None:
    """Adds the dashboard to an app: pages, static assets and its two error answers."""
    app.include_router(router)
    app.mount("/dashboard/static", static_files, name="dashboard-static")
    app.add_exception_handler(LoginRequired, login_redirect)
    app.add_exception_handler(CsrfRejected, csrf_rejected)


# --- Login -------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, next_path: str = Query("/dashboard", alias="next", max_length=2048)):
    return _page(request, "login.html", {"next": _safe_next(next_path), "error": None})


@router.post("/login")
def login(
    request: Request, token: str = Form("", max_length=256), next_path: str = Form("/dashboard", alias="next", max_length=2048)
):
    if not _same_origin(request):
        return _page(request, "login.html", {"next": "/dashboard", "error": "Log in from this site's own page."}, status_code=403)
    settings = request.app.state.settings
    with session_scope() as session:
        row = authenticate(token.strip(), db_session=session) if token.strip() else None
        if row is None:
            error, status = "That token is unknown or revoked.", 401
        elif not allows(row, "admin"):
            error, status = f"The dashboard needs an admin token; this one is {row.role}.", 403
        else:
            cookie, _ = start_session(row, settings.dashboard_session_ttl_s, db_session=session)
            answer = RedirectResponse(_safe_next(next_path), status_code=303)
            answer.set_cookie(
                SESSION_COOKIE,
                cookie,
                max_age=settings.dashboard_session_ttl_s,
                path="/",
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https" or settings.dashboard_cookie_secure,
            )
            return answer
    return _page(request, "login.html", {"next": _safe_next(next_path), "error": error}, status_code=status)


@router.post("/logout")
def logout(request: Request, _login=Depends(checked_form)):
    with session_scope() as session:
        end_session(request.cookies[SESSION_COOKIE], db_session=session)
    answer = RedirectResponse("/dashboard/login?logged_out=1", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return answer


# --- Pages -------------------------------------------------------------------------------


def filters(
    range_name: stats.RangeName = Query("all", alias="range"),
    since: str = Query("", max_length=32),
    until: str = Query("", max_length=32),
    channel: str = Query("", max_length=64),
) -> dict:
    """The page's filter form: a named range, or whole UTC days (`until` inclusive). Browsers
    send empty date fields as "", and a mistyped date is said on the page, not a 422."""
    errors = []

    def day(value: str, name: str) -> date | None:
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            errors.append(f"“{value}” is not a date (YYYY-MM-DD); {name} is ignored.")
            return None

    first, last = day(since, "From"), day(until, "To")
    try:
        window = stats.window_for(
            range_name,
            datetime.combine(first, time(), UTC) if first else None,
            datetime.combine(last, time(), UTC) + timedelta(days=1) if last else None,
            channel,
        )
    except ValueError as error:
        errors.append(f"Dates must fall between 2000 and 2100 ({error}); they are ignored.")
        first = last = None
        window = stats.window_for(range_name, channel=channel)
    raw = {
        "range": range_name,
        "since": first.isoformat() if first else "",
        "until": last.isoformat() if last else "",
        "channel": channel,
    }
    return {"window": window, "raw": raw, "errors": errors, "query": urlencode({k: v for k, v in raw.items() if v})}


@router.get("")
def overview(request: Request, selected: dict = Depends(filters), login=Depends(admin)):
    with session_scope() as session:
        figures = stats.overview(selected["window"], db_session=session)
        channels = stats.channels_seen(db_session=session)
    return _page(request, "overview.html", {"overview": figures, "filters": selected, "channels": channels}, login)


@router.get("/data")
def data(request: Request, selected: dict = Depends(filters), login=Depends(admin)):
    with session_scope() as session:
        figures = stats.distributions(selected["window"], db_session=session)
        channels = stats.channels_seen(db_session=session)
    return _page(request, "data.html", {"figures": figures, "filters": selected, "channels": channels}, login)


@router.get("/training")
def training(request: Request, login=Depends(admin)):
    with session_scope() as session:
        stored = stem_models.get_all(limit=100, db_session=session)
        context = {**_runs_context(session), **_models_context(session, stored)}
    return _page(request, "training.html", context, login)


@router.get("/training/live")
def training_live(request: Request, login=Depends(admin)):
    """The runs table alone: the page swaps it in every few seconds while a run is active."""
    with session_scope() as session:
        context = _runs_context(session)
    return _page(request, "runs_table.html", context, login)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: RowId, login=Depends(admin)):
    with session_scope() as session:
        run = _run_or_404(run_id, session)
        produced = stem_models.get_all(run_id=run_id, db_session=session)
        dataset = datasets.get(run.dataset_id, db_session=session) if run.dataset_id else None
        context = {
            **_progress_context(run),
            **_models_context(session, produced),
            "dataset": DatasetView.model_validate(dataset) if dataset else None,
        }
    return _page(request, "run.html", context, login)


@router.get("/runs/{run_id}/live")
def run_live(request: Request, run_id: RowId, login=Depends(admin)):
    """A run's progress alone, swapped in every few seconds while the run is active."""
    with session_scope() as session:
        context = _progress_context(_run_or_404(run_id, session))
    return _page(request, "run_live.html", context, login)


@router.post("/models/{model_id}/promote")
def promote(
    model_id: RowId,
    login=Depends(checked_form),
    back: str = Form("/dashboard/training", max_length=2048),
    force: bool = Form(False),
    reason: str = Form("", max_length=1000),
):
    with session_scope() as session:
        try:
            stem_models.promote(
                model_id, _who(login), reason.strip() or "promoted from the dashboard", force=force, db_session=session
            )
        except LookupError as error:
            raise HTTPException(404, str(error)) from None
        except stem_models.GateRejected as error:
            return RedirectResponse(_with_notice(_safe_next(back), str(error)), status_code=303)
    return RedirectResponse(_with_notice(_safe_next(back), f"Model {model_id} is now latest."), status_code=303)


@router.post("/models/rollback")
def rollback(login=Depends(checked_form), back: str = Form("/dashboard/training", max_length=2048)):
    with session_scope() as session:
        try:
            promotion = stem_models.rollback(_who(login), db_session=session)
            notice = f"Rolled back: model {promotion.model_id} is latest again."
        except LookupError as error:
            notice = f"Nothing to roll back to: {error}."
    return RedirectResponse(_with_notice(_safe_next(back), notice), status_code=303)


@router.get("/quarantine")
def quarantine(
    request: Request,
    reason: str | None = Query(None, max_length=64),
    channel: str | None = Query(None, max_length=64),
    login=Depends(admin),
):
    with session_scope() as session:
        items = [
            QuarantineView.model_validate(item)
            for item in list_quarantined(reason_type=reason, channel=channel, limit=200, db_session=session)
        ]
    return _page(request, "quarantine.html", {"items": items, "reason": reason, "channel": channel}, login)


# --- Helpers -----------------------------------------------------------------------------


def _runs_context(session) -> dict:
    latest = [RunView.model_validate(run) for run in runs.get_all(limit=100, db_session=session)]
    return {"runs": latest, "active": any(r.status in ACTIVE_STATUSES for r in latest)}


def _run_or_404(run_id: int, session) -> RunView:
    run = runs.get(run_id, db_session=session)
    if run is None:
        raise HTTPException(404, f"no run {run_id}")
    return RunView.model_validate(run)


def _progress_context(run: RunView) -> dict:
    """The loss chart: training and validation loss of a run with one candidate; each
    candidate's validation loss (what selects) when it trains several."""
    by_candidate: dict[str, list[dict]] = {}
    for epoch in run.history or []:
        by_candidate.setdefault(epoch.get("candidate", "model"), []).append(epoch)
    if len(by_candidate) <= 1:
        [history] = by_candidate.values() or [[]]
        series = [
            ("training loss", [h.get("loss") for h in history], "s1"),
            ("validation loss", [h.get("val_loss") for h in history], "s2"),
        ]
    else:
        series = [
            (f"{name}: validation loss", [h.get("val_loss") for h in history], f"s{index + 1}")
            for index, (name, history) in enumerate(by_candidate.items())
        ]
    return {
        "run": run,
        "active": run.status in ACTIVE_STATUSES,
        "epochs": run.parameters.get("epochs"),
        "candidate": next(reversed(by_candidate), None) if len(by_candidate) > 1 else None,
        "loss_series": series,
        "loss_bounds": charts.bounds(*(values for _, values, _ in series)),
    }


def _models_context(session, stored: list[StemModel]) -> dict:
    promotions = stem_models.get_promotions(limit=20, db_session=session)
    return {
        "models": stem_models.summaries(stored, db_session=session),
        "promotions": [PromotionRecord.model_validate(p, from_attributes=True) for p in promotions],
    }


def _page(
    request: Request, template: str, context: dict, login: tuple[AdminSession, ApiToken] | None = None, status_code: int = 200
) -> HTMLResponse:
    context = {
        "admin_name": login[1].name if login else None,
        "csrf": login[0].csrf_token if login else "",
        "notice": request.query_params.get("notice"),
        "path": request.url.path,
        "filters": None,  # the pages of dataset figures have a filter form; the navigation keeps its choice
        **context,
    }
    answer = templates.TemplateResponse(request, template, context, status_code=status_code)
    answer.headers.update(SECURITY_HEADERS)
    return answer


def _same_origin(request: Request) -> bool:
    """Browsers send Origin on form posts; when they do, it must be this site."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _safe_next(path: str) -> str:
    # Only back into the dashboard: never an open redirect to another site.
    return path if path.startswith("/dashboard") and not path.startswith("//") and "\\" not in path else "/dashboard"


def _with_notice(path: str, notice: str) -> str:
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "notice"] + [("notice", notice)]
    return f"{parts.path}?{urlencode(query)}"


def _who(login: tuple[AdminSession, ApiToken]) -> str:
    return f"dashboard:token:{login[1].id}:{login[1].name}"
