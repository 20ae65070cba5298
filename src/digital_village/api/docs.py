"""The API docs (/docs: Swagger UI, /redoc: ReDoc) with every asset served by this app.

The assets come from the ``fastapi-offline`` package (Swagger UI and ReDoc bundles), mounted at
``/docs-assets``; nothing is fetched from a CDN, so the docs work offline and the pages' policy
can allow scripts from this site only. Swagger UI is started by ``/static/api-docs.js`` rather
than an inline script.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from digital_village.api.security import DOCS_POLICY

ASSETS_URL: Final = "/docs-assets"
ASSETS_DIR: Final = Path(fastapi_offline.__file__).parent / "static"

_SWAGGER: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – Swagger UI</title>
<link rel="icon" href="{assets}/favicon.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""

_REDOC: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – ReDoc</title>
<link rel="icon" href="{assets}/favicon.png">
</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="{assets}/redoc.standalone.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serve /docs and /redoc (create the app with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    values = {
        "title": escape(app.title),
        "assets": ASSETS_URL,
        "openapi": escape(app.openapi_url or "/openapi.json"),
    }
    headers = {"Content-Security-Policy": DOCS_POLICY}
    swagger = _SWAGGER.format(**values)
    redoc = _REDOC.format(**values)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger, headers=headers)

    @app.get("/redoc", include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc, headers=headers)
