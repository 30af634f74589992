"""Python tooling for ARC Context (model, export, conversion). Run with /usr/bin/python3."""
