"""Converters between the internal pose matrix (RELION's A) and each package's convention.

Each module here is the only code that knows its package's convention; docs/conventions.md
states them and the tests prove them against files those packages wrote.
"""
