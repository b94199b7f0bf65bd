"""The schema's camelCase property names and Python's snake_case ones, both ways.

The names are few and come back on every registration, Check, Diff and Invoke; pydantic's
converters are a chain of regular expressions (about 0.1 ms a name), so answers are kept.
"""

from __future__ import annotations

import functools

from pydantic import alias_generators

__all__ = ["to_camel", "to_snake"]

to_camel = functools.lru_cache(maxsize=512)(alias_generators.to_camel)
to_snake = functools.lru_cache(maxsize=512)(alias_generators.to_snake)
