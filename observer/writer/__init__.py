"""The writer: ingest, batch transaction, ACK, feed; retention; replay."""
