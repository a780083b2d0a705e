"""lockdownctl: Linux kernel lockdown as a policy the administrator owns."""

__version__ = "0.1.0"
