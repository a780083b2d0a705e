"""The parsers as they were before their per-character loops moved into C
(``re`` and str methods), kept as the reference that the differential tests
compare the fast ones with (tests/unit/test_lexer_differential.py)."""
