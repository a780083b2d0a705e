// SPDX-License-Identifier: GPL-2.0
/*
 * lockdownctl seal: the enforced policy cannot be lowered until reboot.
 *
 * Loaded after the enforcer (lockdown.bpf.c) by `lockdownctl enforce apply
 * --seal`, once its maps are frozen. Each program refuses one way root could
 * lower the policy; seal.py lists them and why the other ways are closed
 * already (frozen maps, BPF_F_RDONLY_PROG, the trampoline's first-denial-wins
 * order for LSM programs).
 *
 * Rules kept here, as in lockdown.bpf.c: a non-zero `ret` is passed through;
 * kernel structures are read with BTF-typed direct loads, never with
 * bpf_probe_read*() (refused at lockdown confidentiality); ids and inode
 * numbers come from user space (rodata before load, .bss before freeze).
 *
 * No refusal is silent: refuse() counts it per rule and records who tried
 * (pid, tid, uid, comm, executable, cgroup) and what (rule, object) in the
 * tamper_events ring buffer. The counters are frozen after load (only this
 * object writes them); the ring buffer's data pages are read-only to user
 * space (the kernel maps only the consumer position writable), so a reader
 * can consume or lose events but never forge or rewrite one, and every lost
 * one is counted (LD_SEAL_COUNTER_DROPS).
 */
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "vmlinux_min.h"
#include "seal.h"

#define EPERM 1
#define MAY_WRITE 0x2
#define FMODE_WRITE 0x2

char LICENSE[] SEC("license") = "GPL";

const volatile struct ld_seal_config cfg = {};
struct ld_seal_self self = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LD_SEAL_COUNTERS_LEN);
	__type(key, __u32);
	__type(value, __u64);
} tamper_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);	/* ~900 events */
} tamper_events SEC(".maps");

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct dentry {
	struct inode *d_inode;
};

struct vfsmount {
	struct dentry *mnt_root;
	struct super_block *mnt_sb;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct bpf_map {
	__u32 id;
};

struct bpf_prog_aux {
	__u32 id;
};

struct bpf_prog {
	struct bpf_prog_aux *aux;
};
#pragma clang attribute pop

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&tamper_counters, &slot);

	if (c)
		*c += 1;	/* per-CPU: no atomics needed */
}

/*
 * Record a refusal and return the refusal. `task_known`: the program may read
 * the current task through BTF (LSM programs; a cgroup/sysctl program may
 * not, so its events carry no executable identity).
 */
static __always_inline int record(__u32 rule, __u64 object, __u32 detail, const int task_known)
{
	struct ld_tamper_event *ev;
	__u64 pid_tgid;

	count(rule);
	ev = bpf_ringbuf_reserve(&tamper_events, sizeof(*ev), 0);
	if (!ev) {
		count(LD_SEAL_COUNTER_DROPS);
		return -EPERM;
	}
	pid_tgid = bpf_get_current_pid_tgid();
	ev->time_ns = bpf_ktime_get_ns();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->exe_ino = 0;
	ev->exe_dev = 0;
	if (task_known) {
		struct task_struct *task = bpf_get_current_task_btf();

		if (task->mm && task->mm->exe_file) {
			struct inode *inode = task->mm->exe_file->f_inode;

			ev->exe_ino = inode->i_ino;
			ev->exe_dev = inode->i_sb->s_dev;
		}
	}
	ev->object = object;
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->rule = rule;
	ev->detail = detail;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_ringbuf_submit(ev, 0);
	return -EPERM;
}

static __always_inline int refuse(__u32 rule, __u64 object, __u32 detail)
{
	return record(rule, object, detail, 1);
}

static __always_inline __u64 ino_of(struct dentry *dentry)
{
	struct inode *inode = dentry->d_inode;

	return inode ? inode->i_ino : 0;
}

static __always_inline int has_u32(const volatile __u32 *a, const __u32 *b, __u32 v)
{
	if (!v)
		return 0;
#pragma unroll
	for (int i = 0; i < LD_SEAL_MAX; i++)
		if (a[i] == v || b[i] == v)
			return 1;
	return 0;
}

static __always_inline int has_ino(const volatile __u64 *a, const __u64 *b, __u64 v)
{
#pragma unroll
	for (int i = 0; i < LD_SEAL_MAX; i++)
		if (a[i] == v || b[i] == v)
			return 1;
	return 0;
}

static __always_inline int on_bpffs(struct inode *inode)
{
	return inode && inode->i_sb->s_dev == cfg.bpffs_dev;
}

static __always_inline int is_pin_dir(struct inode *inode)
{
	return on_bpffs(inode) && inode->i_ino == cfg.pin_dir_ino;
}

static __always_inline int is_link_pin(struct inode *inode)
{
	return on_bpffs(inode) && has_ino(cfg.link_pin_inos, self.link_pin_inos, inode->i_ino);
}

/*
 * bpf(2): no fd for our links by id (an fd detaches or updates them); no
 * program that could override a return value (fmod_ret) or replace a BPF
 * program's code (freplace); no map-element iterator (it may write map
 * values regardless of BPF_F_RDONLY_PROG and freezing).
 *
 * Linux kernel commit 082f1db02c80 ("security: Propagate caller information
 * in bpf hooks") (in v6.15) gave this hook a fourth argument, `bool kernel`.
 * BPF_PROG reads arguments by position, so with three declared `ret` would
 * be `kernel` there. This file is therefore built twice
 * (scripts/build-bpf.sh): seal.bpf.o with three arguments and
 * seal-kernarg.bpf.o with LDCTL_BPF_KERNEL_ARG, and hooks.py loads the one
 * whose arguments match bpf_lsm_bpf in the running kernel's BTF. Calls made
 * from inside the kernel (kernel = true) are refused like the others: a
 * BPF_PROG_TYPE_SYSCALL program could otherwise load an fmod_ret program
 * through bpf_sys_bpf().
 */
SEC("lsm/bpf")
#ifdef LDCTL_BPF_KERNEL_ARG
int BPF_PROG(ldctl_seal_bpf, int cmd, union bpf_attr *attr, unsigned int size, bool kernel, int ret)
#else
int BPF_PROG(ldctl_seal_bpf, int cmd, union bpf_attr *attr, unsigned int size, int ret)
#endif
{
	if (ret)
		return ret;
	if (cmd == BPF_LINK_GET_FD_BY_ID) {
		__u32 id = attr->link_id;

		return has_u32(cfg.link_ids, self.link_ids, id) ? refuse(LD_SEAL_RULE_LINK_FD_BY_ID, id, cmd) : 0;
	}
	if (cmd == BPF_PROG_LOAD) {
		__u32 type = attr->prog_type;
		__u32 btf_id = attr->attach_btf_id;

		if (type == BPF_PROG_TYPE_EXT)
			return refuse(LD_SEAL_RULE_PROG_FREPLACE, btf_id, cmd);
		if (type == BPF_PROG_TYPE_TRACING && attr->expected_attach_type == BPF_MODIFY_RETURN)
			return refuse(LD_SEAL_RULE_PROG_FMOD_RET, btf_id, cmd);
		if (type == BPF_PROG_TYPE_TRACING && attr->expected_attach_type == BPF_TRACE_ITER &&
		    cfg.map_elem_iter_btf_id && btf_id == cfg.map_elem_iter_btf_id)
			return refuse(LD_SEAL_RULE_PROG_MAP_ITER, btf_id, cmd);
	}
	return 0;
}

static __always_inline int any_fd_refused(__u32 id)
{
#pragma unroll
	for (int i = 0; i < LD_SEAL_MAX; i++)
		if (id && cfg.any_fd_map_ids[i] == id)
			return 1;
	return 0;
}

/*
 * A writable fd to a map that holds the policy (by id or by pin). Under a
 * signed seal (gate.bpf.c) any fd to the policy maps and the gate's state:
 * programs may write those maps (the gate does), and the verifier lets a
 * program write a map through a read-only fd (it decides by map flags).
 */
SEC("lsm/bpf_map")
int BPF_PROG(ldctl_seal_bpf_map, struct bpf_map *map, unsigned int fmode, int ret)
{
	if (ret)
		return ret;
	if ((fmode & FMODE_WRITE) && has_u32(cfg.map_ids, self.map_ids, map->id))
		return refuse(LD_SEAL_RULE_MAP_WRITE_FD, map->id, fmode);
	if (any_fd_refused(map->id))
		return refuse(LD_SEAL_RULE_MAP_ANY_FD, map->id, fmode);
	return 0;
}

/* BPF_OBJ_GET on a link pin opens it for writing: that fd could detach it. */
SEC("lsm/inode_permission")
int BPF_PROG(ldctl_seal_inode_permission, struct inode *inode, int mask, int ret)
{
	if (ret)
		return ret;
	if ((mask & MAY_WRITE) && is_link_pin(inode))
		return refuse(LD_SEAL_RULE_LINK_PIN_WRITE, inode->i_ino, mask);
	return 0;
}

/* Removing a pin releases what it holds: the link's pin detaches the program. */
SEC("lsm/inode_unlink")
int BPF_PROG(ldctl_seal_inode_unlink, struct inode *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return is_pin_dir(dir) ? refuse(LD_SEAL_RULE_PIN_UNLINK, ino_of(dentry), 0) : 0;
}

SEC("lsm/inode_rmdir")
int BPF_PROG(ldctl_seal_inode_rmdir, struct inode *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	if (is_pin_dir(dir) || is_pin_dir(dentry->d_inode))
		return refuse(LD_SEAL_RULE_PIN_RMDIR, ino_of(dentry), 0);
	return 0;
}

/* Renaming a pin away (then removing it), or the directory, or over either. */
SEC("lsm/inode_rename")
int BPF_PROG(ldctl_seal_inode_rename, struct inode *old_dir, struct dentry *old_dentry,
	     struct inode *new_dir, struct dentry *new_dentry, int ret)
{
	if (ret)
		return ret;
	if (is_pin_dir(old_dir) || is_pin_dir(new_dir) || is_pin_dir(old_dentry->d_inode) ||
	    is_pin_dir(new_dentry->d_inode))
		return refuse(LD_SEAL_RULE_PIN_RENAME, ino_of(old_dentry), 0);
	return 0;
}

static __always_inline int protected_sb(struct super_block *sb)
{
	__u32 dev = sb->s_dev;

#pragma unroll
	for (int i = 0; i < LD_SEAL_MAX_DEVS; i++)
		if (cfg.mount_devs[i] && cfg.mount_devs[i] == dev)
			return 1;
	return 0;
}

/*
 * Unmounting the bpffs frees its pins (and so detaches the programs); a lazy
 * unmount of a mount it hangs from (/sys, /) detaches it too.
 */
SEC("lsm/sb_umount")
int BPF_PROG(ldctl_seal_sb_umount, struct vfsmount *mnt, int flags, int ret)
{
	struct super_block *sb = mnt->mnt_sb;

	if (ret)
		return ret;
	return protected_sb(sb) ? refuse(LD_SEAL_RULE_UMOUNT, sb->s_dev, flags) : 0;
}

/* No mount onto the bpffs (over the pins), no remount of it, no bind over it. */
SEC("lsm/sb_mount")
int BPF_PROG(ldctl_seal_sb_mount, const char *dev_name, const struct path *path, const char *type,
	     unsigned long flags, void *data, int ret)
{
	if (ret)
		return ret;
	__u32 dev = path->mnt->mnt_sb->s_dev;

	return dev == cfg.bpffs_dev ? refuse(LD_SEAL_RULE_MOUNT, dev, (__u32)flags) : 0;
}

/* The new mount API: move_mount(2) onto the bpffs. */
SEC("lsm/move_mount")
int BPF_PROG(ldctl_seal_move_mount, const struct path *from_path, const struct path *to_path, int ret)
{
	if (ret)
		return ret;
	__u32 dev = to_path->mnt->mnt_sb->s_dev;

	return dev == cfg.bpffs_dev ? refuse(LD_SEAL_RULE_MOVE_MOUNT, dev, 0) : 0;
}

/*
 * sysctl kernel.ftrace_enabled=0 turns every ftrace call site into a nop,
 * BPF trampolines included: every BPF LSM program (the enforcer's and ours)
 * would stop running. A cgroup/sysctl program on the root cgroup (inherited
 * by every cgroup; attached through a link, which BPF_PROG_DETACH cannot
 * remove) refuses that write. 1: allow, 0: refuse (EPERM).
 */
#define LE8(a, b, c, d, e, f, g, h) \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | \
	 (__u64)(e) << 32 | (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

SEC("cgroup/sysctl")
int ldctl_seal_sysctl(struct bpf_sysctl *ctx)
{
	__u64 name[3] = {};	/* "kernel/ftrace_enabled": 21 bytes and a NUL */

	if (!ctx->write)
		return 1;
	if (bpf_sysctl_get_name(ctx, (char *)name, sizeof(name), 0) != 21)
		return 1;
	if (name[0] == LE8('k', 'e', 'r', 'n', 'e', 'l', '/', 'f') &&
	    name[1] == LE8('t', 'r', 'a', 'c', 'e', '_', 'e', 'n') &&
	    name[2] == LE8('a', 'b', 'l', 'e', 'd', 0, 0, 0)) {
		record(LD_SEAL_RULE_SYSCTL, 0, 0, 0);
		return 0;
	}
	return 1;
}
