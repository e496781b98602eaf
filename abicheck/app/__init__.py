"""The program's one face: click parsing, the typed request built from flags and project
settings, the commands and the writing of their output.

Nothing else in abicheck imports this package (tests/test_layering.py holds it to that):
the core and the public API (abicheck.api) work without a command line.
"""
