"""Boot setups: where the kernel command line lives and how to edit it (enable, disable).

engine.py runs the detected setup; each other module is one boot loader or
boot configuration (GRUB, grubby, kernel-install, UKI, kernelstub, rpm-ostree).
"""
