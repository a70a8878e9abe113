"""Grammar of the foreign products' statements (MindsDB, ThanoSQL, BigQuery ML)."""
