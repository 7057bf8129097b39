"""Activities: every stage's I/O. Each loads its inputs by id, calls the gateway, validates, stores, records usage."""
