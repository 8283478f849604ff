"""The base of every JSON model on the wire: camelCase outside, snake_case in Python."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    # Subclasses add their own settings; pydantic merges them with these.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
