"""Workers: one module (or package) per OS process; each imports bus and observer only."""
