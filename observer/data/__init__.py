"""Reading the data back: one call from symbols and a time range to an Arrow table.

    from observer.data import open_catalog

    catalog = open_catalog("config/observer.toml")  # the settings file the observer runs on
    ticks = catalog.ticks("005930", "2026-11-20")  # that KST day, across database and archive
    frame = ticks.to_pandas()  # or polars.from_arrow(ticks)

What each dataset holds and its columns: docs/data.md.
"""

from observer.data.catalog import Catalog, open_catalog
from observer.data.datasets import DATASETS, Dataset
from observer.data.span import DataRequestError, Span, span_of

__all__ = ["DATASETS", "Catalog", "DataRequestError", "Dataset", "Span", "open_catalog", "span_of"]
