"""The archive job: day archives in Parquet and retention (``observer archive``)."""
