"""``observer kis check``: one read-only session against KIS, against what the client assumes."""
