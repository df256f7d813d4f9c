"""Database models, engines and read-only queries."""

from observer.db.engine import display_url, make_engine, normalize_url, read_only_sessions
from observer.db.models import Base

__all__ = ["Base", "display_url", "make_engine", "normalize_url", "read_only_sessions"]
