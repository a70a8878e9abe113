"""Numbers only: scoring and top-k selection, approximate index, metrics and splits."""
