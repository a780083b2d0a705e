/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by seal.bpf.c and lockdownctl/bpf/seal.py (which mirrors them
 * with ctypes; tests/unit/test_bpf_abi.py compares every size and offset).
 */
#ifndef LOCKDOWNCTL_SEAL_H
#define LOCKDOWNCTL_SEAL_H

/* Room for the ids and pin inodes of either object (the seal has 10 links). */
#define LD_SEAL_MAX 16
/* bpffs and every mount it hangs from (/sys, /): none of them may go away. */
#define LD_SEAL_MAX_DEVS 4

/*
 * What the seal protects, known before it loads: the enforcer's objects and
 * where they are pinned. Lives in .rodata (const volatile), written by user
 * space before load; libbpf freezes it.
 */
struct ld_seal_config {
	__u32 bpffs_dev;	/* kernel dev_t of the bpffs holding the pins */
	__u32 map_elem_iter_btf_id; /* vmlinux BTF id of bpf_iter_bpf_map_elem */
	__u64 pin_dir_ino;	/* /sys/fs/bpf/lockdownctl */
	__u32 mount_devs[LD_SEAL_MAX_DEVS]; /* superblocks that may not be unmounted (0: unused) */
	__u32 link_ids[LD_SEAL_MAX];	/* the enforcer's link (0: unused) */
	__u32 map_ids[LD_SEAL_MAX];	/* maps that hold the policy */
	__u64 link_pin_inos[LD_SEAL_MAX]; /* pins of links: no writable open */
	/* Signed seal (gate.bpf.c): maps that grant no new fd at all, read-only included. */
	__u32 any_fd_map_ids[LD_SEAL_MAX];
};

/*
 * The seal's own objects, known only after it loads and attaches: written
 * once into .bss (BPF_F_RDONLY_PROG), which is then frozen. All zero until
 * then, so protecting the enforcer starts at attach and the seal itself
 * a few system calls later.
 */
struct ld_seal_self {
	__u64 sealed_at;	/* CLOCK_REALTIME, nanoseconds */
	__u32 link_ids[LD_SEAL_MAX];
	__u32 map_ids[LD_SEAL_MAX];
	__u64 link_pin_inos[LD_SEAL_MAX];
};

#endif
