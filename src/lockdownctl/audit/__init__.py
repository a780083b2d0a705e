"""``audit``: which kernel options, command-line parameters and sysctls give (or undo) lockdown.

engine.py evaluates checks (small self-validating objects and any_of/all_of
combinators); checks.py is the catalogue of checks; inputs.py reads the
facts they look at (kernel config, command line, sysctls, the running
kernel); rules.py reads a user's YAML rules that add, override or skip checks.
"""
