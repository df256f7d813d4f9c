"""Database models, engines and read-only queries."""
