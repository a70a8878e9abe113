"""The runtime model: a trained version, its recommend path, its catalog and cache."""
