"""Training data, features and catalogue ids, read from SQL into arrays."""
