"""The caller page's first load: every file it fetches, as transferred (gzip), from one origin.

It starts from ``/c/``, follows every ``src``/``href`` of the page and every static ``import`` of
its modules, plus the language file, and sums the compressed bodies (headers excluded).
Budget: 20 KB.

Run: .venv/bin/python -m bench.caller_page
"""

from __future__ import annotations

import re

import httpx

from bench._support import showme_server

# Modules a script loads later with import(): any "./name.js" it mentions.
DYNAMIC = re.compile(r"""["'`](\./[\w-]+\.js)["'`?$]""")
IMPORTS = re.compile(
    r"""(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\s*["']([^"']+)["']"""
)


def load(client: httpx.Client, start: list[str], follow_dynamic: bool) -> dict[str, int]:
    """Bytes transferred (gzip) for ``start`` and every module they import."""
    gzip = {"Accept-Encoding": "gzip"}
    sizes: dict[str, int] = {}
    queue = list(start)
    while queue:
        path = queue.pop(0)
        if path in sizes:
            continue
        answer = client.get(path, headers=gzip)
        answer.raise_for_status()
        sizes[path] = answer.num_bytes_downloaded
        if path == "/c/":
            queue += re.findall(r'(?:src|href)="(/[^"]+)"', answer.text)
        if path.endswith(".js"):
            found = [a or b for a, b in IMPORTS.findall(answer.text)]
            if follow_dynamic:
                found += DYNAMIC.findall(answer.text)
            base = path.rsplit("/", 1)[0]
            queue += [t if t.startswith("/") else f"{base}/{t.removeprefix('./')}" for t in found]
    return sizes


def main() -> None:
    with showme_server() as server, httpx.Client(base_url=server.url) as client:
        for language in ("en", "fr"):
            first = load(client, ["/c/", f"/c/i18n/{language}.json"], follow_dynamic=False)
            everything = load(client, ["/c/", f"/c/i18n/{language}.json"], follow_dynamic=True)
            if language == "en":
                for path, size in everything.items():
                    lazy = "" if path in first else "  (loaded once the link is open)"
                    print(f"  {path:<22} {size:>6} B{lazy}")
            for name, sizes in (("first load", first), ("all to stream and snap", everything)):
                total = sum(sizes.values())
                print(
                    f"caller page, {name} ({language}): {total} B gzip ({total / 1024:.1f} KB), "
                    f"{len(sizes)} requests, budget 20 KB"
                )


if __name__ == "__main__":
    main()
