"""The Python surface: PEP 249 Connection and Cursor, and the recommend API."""
