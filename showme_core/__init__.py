"""ShowMe: let an emergency caller show the scene to a dispatcher."""

from __future__ import annotations

__version__ = "0.1.0"
