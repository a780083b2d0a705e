// SPDX-License-Identifier: GPL-2.0
/*
 * lockdownctl enforcer: kernel lockdown as a BPF LSM policy.
 *
 * Attached to the `locked_down` LSM hook, which the kernel calls from
 * security_locked_down(reason) at every guarded operation. LSM hooks stop at
 * the first denial and the lockdown LSM runs first, so this program can only
 * add denials to what the kernel's own level already refuses.
 *
 * Rules kept here:
 * - a non-zero `ret` (someone already denied) is passed through unchanged;
 * - the allowed hot path is two loads (the proof's tgid, the verdict), no
 *   helper call;
 * - kernel structures are read with BTF-typed direct loads, never with
 *   bpf_probe_read*(), which lockdown itself refuses at confidentiality
 *   (LOCKDOWN_BPF_READ_KERNEL): the enforcer must work on such kernels;
 * - reason values are never named: user space fills the tables from the
 *   running kernel's BTF.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "vmlinux_min.h"
#include "lockdown.h"

#define EPERM 1

char LICENSE[] SEC("license") = "GPL";

/*
 * The one field file_open needs beyond vmlinux_min.h (shared with the seal,
 * whose object must not change): a CO-RE flavor of struct super_block.
 */
struct super_block___ldctl {
	unsigned long s_magic;
} __attribute__((preserve_access_index));

/* The policy, in .bss: user space maps it and writes it in place. */
struct ld_policy policy;

/* enforce apply's proof that this program runs (lockdown.h). */
struct ld_proof proof SEC(".data.proof") = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ld_exe_key);
	__type(value, ld_mask);
} exe_exceptions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ld_id_key);
	__type(value, ld_mask);
} cgroup_exceptions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ld_id_key);
	__type(value, ld_mask);
} uid_exceptions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ld_comm_key);
	__type(value, ld_mask);
} comm_exceptions SEC(".maps");

/* Path exceptions: (slot, dev, ino) of a debugfs file -> reasons; see lockdown.h. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ld_exe_key);
	__type(value, ld_mask);
} path_exceptions SEC(".maps");

/* The last debugfs file each thread opened (file_open -> locked_down). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ld_mark);
} task_marks SEC(".maps");

/* The scope cgroup of each slot (bpf_current_task_under_cgroup()). */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} scope_cgroup SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LD_COUNTERS_LEN);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);

	if (c)
		*c += 1;	/* per-CPU: no atomics needed */
}

static __always_inline int excepted(__u32 slot, __u64 bit, struct ld_event *id)
{
	struct ld_exe_key exe = { .slot = slot, .dev = id->exe_dev, .ino = id->exe_ino };
	struct ld_id_key cg = { .slot = slot, .id = id->cgroup_id };
	struct ld_id_key uid = { .slot = slot, .id = id->uid };
	struct ld_comm_key comm = { .slot = slot };
	ld_mask *mask;

	if (id->exe_ino && (mask = bpf_map_lookup_elem(&exe_exceptions, &exe)) && (*mask & bit))
		return 1;
	if ((mask = bpf_map_lookup_elem(&cgroup_exceptions, &cg)) && (*mask & bit))
		return 1;
	if ((mask = bpf_map_lookup_elem(&uid_exceptions, &uid)) && (*mask & bit))
		return 1;
	__builtin_memcpy(comm.comm, id->comm, LD_COMM_LEN);
	if ((mask = bpf_map_lookup_elem(&comm_exceptions, &comm)) && (*mask & bit))
		return 1;
	return 0;
}

/*
 * The file this check is about, from the thread's file_open mark: named in
 * the event, and 1 when its path exception allows the reason. A mark serves
 * one check: it is consumed here, so the next check of the same thread
 * (another open, which first replaces the mark) gets no borrowed exemption.
 */
static __always_inline int marked(struct task_struct *task, __u32 slot, __u64 bit, struct ld_event *id)
{
	struct ld_mark *mark;
	int allowed;

	if (!policy.paths[slot])
		return 0;
	mark = bpf_task_storage_get(&task_marks, task, 0, 0);
	if (!mark || mark->pid_tgid != bpf_get_current_pid_tgid() || !(mark->reasons & bit))
		return 0;
	mark->pid_tgid = 0;
	if (bpf_ktime_get_ns() - mark->time_ns > LD_MARK_TTL_NS)
		return 0;
	id->file_ino = mark->ino;
	id->file_dev = mark->dev;
	allowed = (mark->allow & bit) != 0;
	return allowed;
}

/* A reason the policy denies or audits: scope, exceptions, count, event. */
static __always_inline int decide(__u32 reason, __u32 slot, __u8 verdict)
{
	struct task_struct *task;
	struct ld_event id = {};
	struct ld_event *ev;

	if (policy.scoped[slot] && bpf_current_task_under_cgroup(&scope_cgroup, slot) != 1)
		return 0;

	/* Who asks: the executable's identity through BTF-typed loads. */
	task = bpf_get_current_task_btf();
	if (marked(task, slot, 1ULL << reason, &id)) {
		count(reason * LD_NCOUNTERS + LD_COUNT_EXCEPTED);
		return 0;
	}
	if (task->mm && task->mm->exe_file) {
		struct inode *inode = task->mm->exe_file->f_inode;

		id.exe_ino = inode->i_ino;
		id.exe_dev = inode->i_sb->s_dev;
	}
	id.cgroup_id = bpf_get_current_cgroup_id();
	id.uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(id.comm, sizeof(id.comm));

	if (excepted(slot, 1ULL << reason, &id)) {
		count(reason * LD_NCOUNTERS + LD_COUNT_EXCEPTED);
		return 0;
	}
	if (policy.audit[slot])
		verdict = LD_AUDIT;
	count(reason * LD_NCOUNTERS + (verdict == LD_DENY ? LD_COUNT_DENIED : LD_COUNT_AUDITED));

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (ev) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();

		*ev = id;
		ev->time_ns = bpf_ktime_get_ns();
		ev->pid = pid_tgid >> 32;
		ev->tid = (__u32)pid_tgid;
		ev->reason = reason;
		ev->verdict = verdict;
		bpf_ringbuf_submit(ev, 0);
	} else {
		count(LD_COUNTER_DROPS);
	}
	return verdict == LD_DENY ? -EPERM : 0;
}

SEC("lsm/locked_down")
int BPF_PROG(ldctl_locked_down, int what, int ret)
{
	__u32 reason = what, slot;
	__u8 verdict;

	if (proof.tgid && proof.tgid == bpf_get_current_pid_tgid() >> 32)
		__sync_fetch_and_add(&proof.hits, 1);
	if (ret)
		return ret;
	if (reason >= LD_MAX_REASONS)
		return 0;
	slot = policy.gen & 1;
	verdict = policy.verdict[slot][reason];
	if (verdict == LD_ALLOW)
		return 0;	/* the hot path: one load from .bss */
	return decide(reason, slot, verdict);
}

/* Forget the thread's mark (a later check must not find it). */
static __always_inline void unmark(struct task_struct *task)
{
	struct ld_mark *mark = bpf_task_storage_get(&task_marks, task, 0, 0);

	if (mark)
		mark->pid_tgid = 0;
}

/*
 * Every open: a debugfs file is marked on the opening thread with its
 * identity and what its path exception allows (nothing for other files, so
 * the event names them); any other file clears the mark. Only while the
 * active policy has path exceptions: otherwise one load and return.
 */
SEC("lsm/file_open")
int BPF_PROG(ldctl_file_open, struct file *file, int ret)
{
	struct ld_exe_key key = { .slot = policy.gen & 1 };
	struct task_struct *task;
	struct ld_mark *mark;
	struct inode *inode;
	ld_mask *reasons, *allow;

	if (ret || !policy.paths[key.slot])
		return ret;
	task = bpf_get_current_task_btf();
	inode = file->f_inode;
	if (((struct super_block___ldctl *)inode->i_sb)->s_magic != DEBUGFS_MAGIC) {
		unmark(task);
		return 0;
	}
	reasons = bpf_map_lookup_elem(&path_exceptions, &key);	/* {slot, 0, 0} */
	if (!reasons) {
		unmark(task);
		return 0;
	}
	mark = bpf_task_storage_get(&task_marks, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!mark)
		return 0;	/* no mark: the check denies, as without the exception */
	key.dev = inode->i_sb->s_dev;
	key.ino = inode->i_ino;
	allow = bpf_map_lookup_elem(&path_exceptions, &key);
	mark->ino = key.ino;
	mark->dev = key.dev;
	mark->allow = allow ? *allow : 0;
	mark->reasons = *reasons;
	mark->time_ns = bpf_ktime_get_ns();
	mark->pid_tgid = bpf_get_current_pid_tgid();
	return 0;
}

/*
 * chmod and chown of a debugfs file check LOCKDOWN_DEBUGFS too
 * (debugfs_setattr()), with no open before them: a mark left by an open
 * that failed after file_open must not serve that check. Reads no argument:
 * the hook's list differs between kernels (idmap first since 6.9).
 */
SEC("lsm/inode_setattr")
int ldctl_inode_setattr(unsigned long long *ctx)
{
	if (policy.paths[policy.gen & 1])
		unmark(bpf_get_current_task_btf());
	return 0;
}
