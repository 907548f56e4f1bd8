"""The embed stage: map a face chip to an embedding (metric learning)."""
