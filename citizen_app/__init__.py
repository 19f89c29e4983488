"""The caller's page: plain HTML, CSS and ES modules served at ``/c/``.

Its size budget lives here, in one place, read by the test that enforces it and by the benchmark
that reports it (DESIGN, "Performance budgets"): bytes as transferred (gzip), from one origin.
"""

from __future__ import annotations

# The page, its stylesheet, its first modules and its language file: what a caller waits for.
FIRST_LOAD_BUDGET = 14 * 1024
# Everything the page loads to locate, chat, stream and snap (modules loaded once the link is
# open included).
PAGE_BUDGET = 22 * 1024
