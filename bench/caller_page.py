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

IMPORTS = re.compile(
    r"""(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\s*["']([^"']+)["']"""
)


def main() -> None:
    with showme_server() as server, httpx.Client(base_url=server.url) as client:
        gzip = {"Accept-Encoding": "gzip"}
        page = client.get("/c/", headers=gzip)
        sizes = {"/c/": page.num_bytes_downloaded}
        queue = [*re.findall(r'(?:src|href)="(/[^"]+)"', page.text), "/c/i18n/en.json"]
        while queue:
            path = queue.pop(0)
            if path in sizes:
                continue
            answer = client.get(path, headers=gzip)
            answer.raise_for_status()
            sizes[path] = answer.num_bytes_downloaded
            if path.endswith(".js"):
                for found in IMPORTS.findall(answer.text):
                    target = found[0] or found[1]
                    base = path.rsplit("/", 1)[0]
                    queue.append(target if target.startswith("/") else f"{base}/{target[2:]}")
        for path, size in sizes.items():
            print(f"  {path:<22} {size:>6} B")
        total = sum(sizes.values())
        print(
            f"caller page first load: {total} B gzip ({total / 1024:.1f} KB), "
            f"{len(sizes)} requests, budget 20 KB"
        )


if __name__ == "__main__":
    main()
