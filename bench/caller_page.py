"""The caller page as a phone transfers it (gzip bodies, headers excluded), from one origin.

Starts from ``/c/``, follows every ``src``/``href`` of the page and every static ``import`` of its
modules, plus the language file (the first load), then also the modules the page loads once the
link is open (everything to stream and snap). The budgets are the ones the test enforces, read
from ``citizen_app``.

Run: .venv/bin/python -m bench.caller_page
"""

from __future__ import annotations

import asyncio

import httpx

from bench._support import showme_server
from citizen_app import FIRST_LOAD_BUDGET, PAGE_BUDGET
from tests.caller_page import transferred


async def measure(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        for language in ("en", "fr"):
            first = await transferred(client, language, everything=False)
            everything = await transferred(client, language, everything=True)
            if language == "en":
                for path, size in everything.items():
                    lazy = "" if path in first else "  (loaded once the link is open)"
                    print(f"  {path:<22} {size:>6} B{lazy}")
            for name, sizes, budget in (
                ("first load", first, FIRST_LOAD_BUDGET),
                ("everything to stream and snap", everything, PAGE_BUDGET),
            ):
                total = sum(sizes.values())
                print(
                    f"caller page, {name} ({language}): {total} B gzip ({total / 1024:.1f} KB), "
                    f"{len(sizes)} requests, budget {budget / 1024:.0f} KB"
                )


def main() -> None:
    with showme_server() as server:
        asyncio.run(measure(server.url))


if __name__ == "__main__":
    main()
