"""The dispatcher console and the caller's page: static files, plus their plugin extras."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from showme_core.web.auth import showme_of

CONSOLE_DIR = Path(str(files("showme_core") / "console" / "static"))
CALLER_DIR = Path(str(files("citizen_app")))


class PageFiles(StaticFiles):
    """Static files that are revalidated on every load, so an upgrade reaches every console."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "no-cache"
        return response


def console_files() -> StaticFiles:
    return PageFiles(directory=CONSOLE_DIR, html=True)


def caller_files() -> StaticFiles:
    return PageFiles(directory=CALLER_DIR, html=True)


async def root(_request: Request) -> Response:
    return RedirectResponse("/console/", status_code=302)


async def console_extras(request: Request) -> Response:
    showme = showme_of(request)
    extras = showme.plugins.console_extras(showme)
    return JSONResponse({"scripts": extras.scripts, "stylesheets": extras.stylesheets})


async def caller_extras(request: Request) -> Response:
    showme = showme_of(request)
    extras = showme.plugins.caller_page_extras(showme)
    return JSONResponse({"scripts": extras.scripts, "stylesheets": extras.stylesheets})
