"""The base of every JSON model on the wire: camelCase outside, snake_case in Python; figures
made JSON-safe; and conditional GETs."""

import math
import numbers

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    # Subclasses add their own settings; pydantic merges them with these.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def json_safe(value):
    """Nested figures with every NaN or infinity as None: JSON has no NaN, and Postgres' JSON
    columns refuse it."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, bool | numbers.Integral):
        return value if isinstance(value, bool) else int(value)
    if isinstance(value, numbers.Real):  # NumPy's scalars included
        return float(value) if math.isfinite(value) else None
    return value


def etag_matches(request, etag: str) -> bool:
    """Whether the request's If-None-Match names this ETag (the answer is then a bare 304)."""
    return etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]
