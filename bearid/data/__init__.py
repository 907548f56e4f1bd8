"""Data management for a growing photo archive: catalog, ingest, clean, split and stats.

The directory tree is the truth (see `layout`); the catalog is an index rebuilt from it.
"""
