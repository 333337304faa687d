"""Commands added to the shared app (see cli/app.py)."""
from __future__ import annotations

from .app import app  # noqa: F401
