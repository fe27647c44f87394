"""otdata: compare, transform and re-use labeled datasets with optimal transport."""

__version__ = "0.1.0"
