"""Statements and functions of the products sqlrec replaces, run on sqlrec's own."""
