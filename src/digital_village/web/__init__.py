"""Human pages: the resolver, the consumer, product and parcel pages, label routes and scans.

This module holds where the templates and static files are and the template environment;
the site's words and the choice of language are in :mod:`digital_village.web.i18n`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

import jinja2
from markupsafe import Markup

from digital_village.api import security

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "templates"]

STATIC_DIR: Final = Path(__file__).with_name("static")
TEMPLATES_DIR: Final = Path(__file__).with_name("templates")


@functools.cache
def templates() -> jinja2.Environment:
    """The site's template environment: HTML autoescaped, undefined variables are errors."""
    from digital_village.web import facts

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["inline_style"] = _inline_style
    environment.filters["fact_attrs"] = facts.attrs
    return environment


def _inline_style(css: Markup) -> Markup:
    """``{% filter inline_style %}`` around a page's <style> content: allowed by its hash."""
    security.allow_inline_style(str(css))
    return css
