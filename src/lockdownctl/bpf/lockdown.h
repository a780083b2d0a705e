/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by lockdown.bpf.c and lockdownctl/bpf/engine.py (which
 * mirrors them with ctypes; tests/unit/test_bpf_abi.py compiles this header
 * and compares every size and offset with the ctypes mirror).
 */
#ifndef LOCKDOWNCTL_LOCKDOWN_H
#define LOCKDOWNCTL_LOCKDOWN_H

/*
 * Reason values are indexes into these tables. The kernel's
 * enum lockdown_reason has 31 members in v7.0; 64 leaves room and lets an
 * exception hold its allowed reasons as one 64-bit mask. The values
 * themselves come from the running kernel's BTF, filled in by user space:
 * the program never names a reason.
 */
#define LD_MAX_REASONS 64

/* Per-reason verdicts in the policy table. */
#define LD_ALLOW 0
#define LD_DENY 1
#define LD_AUDIT 2

/* Counter slots per reason (index reason * LD_NCOUNTERS + slot). */
#define LD_COUNT_DENIED 0
#define LD_COUNT_AUDITED 1
#define LD_COUNT_EXCEPTED 2
#define LD_NCOUNTERS 3
/* The last counter: events the ring buffer had no room for. */
#define LD_COUNTER_DROPS (LD_MAX_REASONS * LD_NCOUNTERS)
#define LD_COUNTERS_LEN (LD_COUNTER_DROPS + 1)

#define LD_COMM_LEN 16

/*
 * The policy lives in two generations (slots 0 and 1). User space writes the
 * inactive slot completely, then flips `gen` with one aligned store, so a hook
 * invocation always sees either the whole old or the whole new policy.
 */
struct ld_policy {
	__u32 gen;	   /* active slot = gen & 1 */
	__u32 sealed;	   /* informational: set when the seal was applied */
	__u64 policy_id;   /* hash of the applied policy, for `enforce status` */
	__u8 audit[2];	   /* per slot: 1 = audit mode (log, never deny) */
	__u8 scoped[2];	   /* per slot: 1 = only tasks under scope_cgroup[slot] */
	__u8 paths[2];	   /* per slot: 1 = path exceptions exist (file_open marks debugfs opens) */
	__u8 pad[2];
	__u8 verdict[2][LD_MAX_REASONS]; /* per slot, indexed by reason value */
};

/* Exception keys: the slot comes first so both generations can coexist. */
struct ld_exe_key {
	__u32 slot;
	__u32 dev;	/* kernel dev_t of the executable's superblock */
	__u64 ino;
};

struct ld_id_key {	/* cgroup id or uid */
	__u32 slot;
	__u32 pad;
	__u64 id;
};

struct ld_comm_key {
	__u32 slot;
	char comm[LD_COMM_LEN];
};

/* An exception's value: the reasons it allows, bit = reason value. */
typedef __u64 ld_mask;

/*
 * Path exceptions (path_exceptions map) are keyed like executables, by the
 * file's (kernel dev_t, inode) in a slot. The key {slot, 0, 0}, which no file
 * has, holds the reasons a file_open mark is for (the debugfs reason's bit):
 * the kernel checks LOCKDOWN_DEBUGFS inside the debugfs proxy open, after the
 * file_open hook and with only the reason passed, so the file is carried
 * from one hook to the other in task storage.
 */
struct ld_mark {
	__u64 ino;	   /* the debugfs file this task opened last */
	__u32 dev;
	__u32 pad;
	__u64 pid_tgid;	   /* the thread that opened it; 0 = no mark (consumed or cleared) */
	__u64 time_ns;	   /* bpf_ktime_get_ns() at file_open */
	ld_mask allow;	   /* reasons its path exception allows (0: not exempted) */
	ld_mask reasons;   /* reasons the mark names the file for (the debugfs reason) */
};

/*
 * A mark older than this is ignored: file_open and the proxy open run within
 * one system call, microseconds apart; the limit bounds a mark left behind by
 * an open that failed between them (a later LSM or fanotify refused it).
 */
#define LD_MARK_TTL_NS 100000000ULL

/*
 * Evidence that the program runs (enforce apply's proof, bpf/apply.py): while
 * `tgid` is non-zero, every call the process with that tgid makes counts in
 * `hits`. Its own map (.data.proof): the policy's .bss is frozen before a
 * sealed attach, and the proof comes after. It replaces the kernel's run
 * count, which needs BPF_ENABLE_STATS: that flips bpf_stats_enabled_key, a
 * static key patched (text_poke_bp) into __bpf_prog_enter/exit, which every
 * trampoline calls, while other CPUs run them (file_open on every open).
 */
struct ld_proof {
	__u32 tgid;
	__u32 pad;
	__u64 hits;
};

/* One ring-buffer record per denial or audit. */
struct ld_event {
	__u64 time_ns;	   /* bpf_ktime_get_ns(): monotonic, like printk (suspend not counted) */
	__u64 cgroup_id;
	__u64 exe_ino;
	__u32 exe_dev;
	__u32 pid;	   /* thread group id (user-space pid) */
	__u32 tid;
	__u32 uid;
	__u32 reason;	   /* enum lockdown_reason value on this kernel */
	__u8 verdict;	   /* LD_DENY or LD_AUDIT */
	__u8 pad[3];
	char comm[LD_COMM_LEN];
	__u64 file_ino;	   /* the debugfs file the check is about (path exceptions loaded), else 0 */
	__u32 file_dev;
	__u32 pad2;
};

#endif
