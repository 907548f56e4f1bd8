"""BearID training: the four stage trainers, the results tree and evaluation.

Imports `bearid`; nothing in `bearid` imports this package (the `bearid` command finds the
training verbs through an entry point).
"""
