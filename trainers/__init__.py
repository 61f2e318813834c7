"""Self-supervised trainers: one engine, one file per method."""
