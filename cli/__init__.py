"""The ``breach`` command line."""
