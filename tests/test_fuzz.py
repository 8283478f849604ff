"""Schema-driven fuzzing (schemathesis) of every operation in the app's OpenAPI document,
with valid and deliberately invalid inputs: nothing may answer 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from app.config import Settings
from app.main import create_app

# No rate limit here: a 429 would hide what the fuzzer's inputs do.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(rate_limit_per_s=0)))
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture
def operator_headers(db, configure, tmp_path) -> dict:
    """Each example writes to a real, migrated database (SQLite and Postgres), as an operator,
    so the fuzzer gets past authentication to the handlers. Runs it starts go to a broker
    folder of this test's own."""
    from app.auth.service import create_token
    from app.db.engine import session_scope

    configure(
        CELERY_BROKER_URL="filesystem://", FABRIC_EMBEDDED_BROKER_DIR=str(tmp_path / "broker"), FABRIC_ARTIFACTS_DIR=str(tmp_path)
    )
    with session_scope() as session:
        token, _ = create_token("fuzzer", "admin", db_session=session)
    return {"Authorization": f"Bearer {token}"}


def _attacks_authorization(case) -> bool:
    """The fuzzer's own negative cases for the Authorization header: it sends a broken one, or
    drops ours ("Missing `Authorization`"). Only those may get 401."""
    if any(name.lower() == "authorization" for name in case.headers or {}):
        return True
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    return getattr(data, "parameter", None) == "Authorization"


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case, operator_headers):
    response = case.call(headers=operator_headers)
    # Past authentication, or the fuzz tests only the 401 handler: an admin token opens every route.
    if not _attacks_authorization(case):
        assert response.status_code != 401, f"{case.method} {case.path} refused the admin token: {response.text[:200]}"
    assert response.status_code != 429
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
