"""Forms posted to us as ``application/x-www-form-urlencoded``, read with a bound.

No form of ours has more than a handful of fields; a post with more is not one of them and
gets a 400 page, where ``parse_qs`` would have raised into a 500.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request


async def form_fields(request: Request, most: int) -> dict[str, list[str]] | None:
    """The posted fields, or None when there are more than ``most``."""
    body = (await request.body()).decode("utf-8", "replace")
    try:
        return parse_qs(body, max_num_fields=most)
    except ValueError:
        return None


def first(form: dict[str, list[str]], name: str, limit: int) -> str:
    """The field's first value, cut at ``limit`` characters ("" when absent)."""
    return (form.get(name) or [""])[0][:limit]
