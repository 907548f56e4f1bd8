"""bearembed: map a face chip to an embedding (metric learning)."""
