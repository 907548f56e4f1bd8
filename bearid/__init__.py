"""BearID: tell individual brown bears apart from photos, and manage the data behind it."""

__version__ = "0.1.0"
