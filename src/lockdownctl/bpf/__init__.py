"""The BPF side of lockdownctl: the enforcer and the probes it needs."""
