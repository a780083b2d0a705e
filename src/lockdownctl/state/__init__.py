"""Host state below the verbs: what the running kernel (or a ``--root``) says.

``document`` assembles the status document (level, its source, LSMs, Secure
Boot, BPF LSM, enforcer) that ``status`` prints and ``check``, ``audit``,
``enable`` and the enforcer read; ``kernel`` does its kernel-side reads in a
child process; ``bpf_lsm`` is the one decision whether the enforcer can run
here. Nothing in this package imports a verb (tests/unit/test_layers.py).
"""
