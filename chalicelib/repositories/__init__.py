"""SQL lives here, as SQL. Each repository takes a `Database` and returns plain dicts."""
