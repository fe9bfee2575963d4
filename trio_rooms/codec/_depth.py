"""How deep a recursive message may nest, and the check that runs before structuring."""

from __future__ import annotations

__all__ = ["MAX_RECURSIVE_DEPTH", "too_deep"]

# Structuring a recursive type costs about three Python frames per level, so a
# recursive message is limited well below the parsers' own limits (about 1024
# levels) to stay far from the interpreter's recursion limit.
MAX_RECURSIVE_DEPTH = 100


def too_deep(obj: object, limit: int) -> bool:
    """Whether ``obj`` nests lists and dicts more than ``limit`` levels deep."""
    # Iterative on purpose: this guards the recursive code from deep input.
    if type(obj) is not dict and type(obj) is not list:
        return False  # a scalar (an HTTP body may be one) nests nothing
    level: list[object] = [obj]
    for _ in range(limit):
        nested: list[object] = []
        for value in level:
            # Decoded wire values, whose items pyright cannot know; a cast per
            # value would cost a call on the decode path.
            items = value.values() if type(value) is dict else value  # pyright: ignore[reportUnknownVariableType]
            nested.extend(v for v in items if type(v) is dict or type(v) is list)  # pyright: ignore[reportGeneralTypeIssues, reportUnknownArgumentType, reportUnknownVariableType]
        if not nested:
            return False
        level = nested
    return True
