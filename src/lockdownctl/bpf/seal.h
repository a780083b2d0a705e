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

/*
 * Tamper attempts: every refusal above is counted per rule and recorded in a
 * ring buffer (seal.py names the rules; `lockdownctl enforce events`, `watch
 * --enforcer` and the metrics show them). Rule values index the counters.
 */
#define LD_SEAL_RULE_LINK_FD_BY_ID 0	/* bpf: BPF_LINK_GET_FD_BY_ID on a protected link */
#define LD_SEAL_RULE_PROG_FREPLACE 1	/* bpf: BPF_PROG_LOAD of BPF_PROG_TYPE_EXT */
#define LD_SEAL_RULE_PROG_FMOD_RET 2	/* bpf: BPF_PROG_LOAD of BPF_MODIFY_RETURN */
#define LD_SEAL_RULE_PROG_MAP_ITER 3	/* bpf: BPF_PROG_LOAD of a map-element iterator */
#define LD_SEAL_RULE_MAP_WRITE_FD 4	/* bpf_map: a writable fd to a protected map */
#define LD_SEAL_RULE_LINK_PIN_WRITE 5	/* inode_permission: a link pin opened for writing */
#define LD_SEAL_RULE_PIN_UNLINK 6	/* inode_unlink in the pin directory */
#define LD_SEAL_RULE_PIN_RMDIR 7	/* inode_rmdir of or in the pin directory */
#define LD_SEAL_RULE_PIN_RENAME 8	/* inode_rename from, to or of the pin directory */
#define LD_SEAL_RULE_UMOUNT 9		/* sb_umount of bpffs or a mount it hangs from */
#define LD_SEAL_RULE_MOUNT 10		/* sb_mount onto or of the bpffs */
#define LD_SEAL_RULE_MOVE_MOUNT 11	/* move_mount onto the bpffs */
#define LD_SEAL_RULE_SYSCTL 12		/* cgroup/sysctl: kernel.ftrace_enabled written */
#define LD_SEAL_RULE_MAP_ANY_FD 13	/* bpf_map: any fd to a map the gate writes (signed seal) */
#define LD_SEAL_NRULES 14
/* The last counter: events the ring buffer had no room for. */
#define LD_SEAL_COUNTER_DROPS LD_SEAL_NRULES
#define LD_SEAL_COUNTERS_LEN (LD_SEAL_NRULES + 1)

#define LD_SEAL_COMM_LEN 16

/* One ring-buffer record per refused tamper attempt. */
struct ld_tamper_event {
	__u64 time_ns;	/* bpf_ktime_get_ns(): monotonic, like printk and the enforcer's events */
	__u64 cgroup_id;
	__u64 exe_ino;	/* 0 with exe_dev 0: not known (a cgroup/sysctl program cannot see the task) */
	__u64 object;	/* what was protected: link or map id, inode number, kernel dev_t, attach BTF id */
	__u32 exe_dev;
	__u32 pid;	/* thread group id (user-space pid) */
	__u32 tid;
	__u32 uid;
	__u32 rule;	/* LD_SEAL_RULE_* */
	__u32 detail;	/* the hook's own argument: bpf cmd, fmode, mask, mount flags */
	char comm[LD_SEAL_COMM_LEN];
};

#endif
