"""The recorded season of the page tests (one database per backend), for the privacy tests."""

from tests.web.conftest import pages_app, pages_client, pages_connection, pages_db

__all__ = ["pages_app", "pages_client", "pages_connection", "pages_db"]
