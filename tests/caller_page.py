"""What the caller page transfers: one crawler for the budget test and the benchmark."""

from __future__ import annotations

import re

import httpx

# A module a script imports statically (``import ... from "./x.js"``, ``import "./x.js"``).
STATIC_IMPORT = re.compile(
    r"""(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\s*["']([^"']+)["']"""
)
# Any module a script mentions, loaded later with import() as well: ``"./name.js"``.
ANY_MODULE = re.compile(r"""["'`](\./[\w-]+\.js)["'`?$]""")
GZIP = {"Accept-Encoding": "gzip"}


async def transferred(
    client: httpx.AsyncClient, language: str, *, everything: bool
) -> dict[str, int]:
    """Bytes on the wire (gzip bodies) per path for ``/c/`` in ``language``: the first load
    (the page, what it links, the modules they import and the language file), or with
    ``everything`` also the modules loaded once the link is open."""
    sizes: dict[str, int] = {}
    queue = ["/c/", f"/c/i18n/{language}.json"]
    while queue:
        path = queue.pop(0)
        if path in sizes:
            continue
        answer = await client.get(path, headers=GZIP)
        if answer.status_code != 200:
            raise AssertionError(f"{path} answered {answer.status_code}")
        sizes[path] = answer.num_bytes_downloaded
        if path == "/c/":
            if re.search(r'(?:src|href)="(?:https?:)?//', answer.text):
                raise AssertionError("the caller page links another origin")
            queue += re.findall(r'(?:src|href)="(/[^"]+)"', answer.text)
        elif path.endswith(".js"):
            found = [a or b for a, b in STATIC_IMPORT.findall(answer.text)]
            if everything:
                found += ANY_MODULE.findall(answer.text)
            base = path.rsplit("/", 1)[0]
            queue += [p if p.startswith("/") else f"{base}/{p.removeprefix('./')}" for p in found]
    return sizes
