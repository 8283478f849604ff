"""The OpenAPI document: every operation shows an example of what it takes or answers."""

from app.config import Settings
from app.main import create_app


def _has_example(node, components: dict, seen: frozenset = frozenset()) -> bool:
    if isinstance(node, dict):
        if "example" in node or "examples" in node:
            return True
        ref = node.get("$ref")
        if ref and ref not in seen:
            return _has_example(components[ref.rsplit("/", 1)[1]], components, seen | {ref})
        return any(_has_example(v, components, seen) for k, v in node.items() if k != "$ref")
    if isinstance(node, list):
        return any(_has_example(v, components, seen) for v in node)
    return False


def test_every_operation_has_an_example():
    document = create_app(Settings()).openapi()
    components = document["components"]["schemas"]
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {})
            answers = {code: r for code, r in operation.get("responses", {}).items() if code.startswith("2")}
            if not (_has_example(body, components) or _has_example(answers, components)):
                missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_security_scheme_is_documented_for_operator_routes():
    document = create_app(Settings()).openapi()
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    assert document["paths"]["/runs"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in document["paths"]["/models/latest"]["get"]


def test_request_examples_are_valid_requests():
    """The examples the documentation shows are accepted as they are, and what they say is kept."""
    from app.snapshots.schemas import Snapshot
    from app.snapshots.views import EXAMPLE_SNAPSHOT
    from app.training_runs.schemas import RunParameters

    snapshot = Snapshot.model_validate(EXAMPLE_SNAPSHOT)
    assert str(snapshot.id) == EXAMPLE_SNAPSHOT["id"]
    assert snapshot.musical_context.bpm == EXAMPLE_SNAPSHOT["musicalContext"]["bpm"]
    examples = RunParameters.model_config["json_schema_extra"]["examples"]
    assert examples
    for example in examples:
        parameters = RunParameters.model_validate(example)
        assert parameters.model_dump(by_alias=True, include={alias_to_name(k) for k in example}) == example


def alias_to_name(alias: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in alias)
