/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by gate.bpf.c and lockdownctl/bpf/abi.py + signing.py (which
 * mirror them with ctypes; tests/unit/test_bpf_abi.py compiles this header
 * and compares every size and offset).
 *
 * A signed policy bundle is one struct ld_gate_bundle, byte for byte what
 * `lockdownctl policy sign` writes and `enforce update` hands to the kernel
 * as the value of a BPF_MAP_UPDATE_ELEM on the gate's inbox map. The signed
 * bytes are `payload`, whole: fixed-size tables, so the gate installs them
 * without parsing anything of variable length.
 */
#ifndef LOCKDOWNCTL_GATE_H
#define LOCKDOWNCTL_GATE_H

#include "lockdown.h"

#define LD_GATE_MAGIC 0x4253444cU	/* "LDSB", little-endian */
#define LD_GATE_FORMAT 1
#define LD_GATE_MAX_EXC 32	/* entries per exception kind in one bundle */
#define LD_GATE_MAX_SIG 1024	/* DER PKCS#7 of an RSA-4096 signature is ~600 bytes */
#define LD_GATE_MAX_PREFIX 256	/* the signature's DER up to the RSA value */
#define LD_GATE_COUNTERS 16	/* refusal counters, indexed by LD_GATE_R_* */

/* Why the gate refused (event `why`, counter index); 0 = accepted. */
#define LD_GATE_ACCEPTED 0
#define LD_GATE_R_FORMAT 1	/* EBADMSG: magic, format, sizes */
#define LD_GATE_R_SIGNER 2	/* EKEYREJECTED: not the pinned signer's shape/key id */
#define LD_GATE_R_SIGNATURE 3	/* EKEYREJECTED: the kernel's PKCS#7 check failed */
#define LD_GATE_R_STALE 4	/* ESTALE: version not strictly greater */
#define LD_GATE_R_HOST 5	/* EBADMSG: for another host */
#define LD_GATE_R_REASONS 6	/* EBADMSG: compiled for another reason numbering */
#define LD_GATE_R_NOKEY 7	/* ENOKEY: the trusted keyring is gone */
#define LD_GATE_R_BUSY 8	/* EBUSY: another update is being checked */
#define LD_GATE_R_FAULT 9	/* EFAULT: the bundle could not be copied */
#define LD_GATE_R_WRITE 10	/* EIO: a map write failed half-way (the old policy stays active) */

struct ld_gate_exe {
	__u32 dev;	/* kernel dev_t */
	__u32 pad;
	__u64 ino;
	__u64 mask;
};

struct ld_gate_id {	/* cgroup id or uid */
	__u64 id;
	__u64 mask;
};

struct ld_gate_comm {
	char comm[LD_COMM_LEN];
	__u64 mask;
};

/* What the signature covers. */
struct ld_gate_payload {
	__u32 magic;		/* LD_GATE_MAGIC */
	__u32 format;		/* LD_GATE_FORMAT */
	__u64 version;		/* strictly increasing */
	__u64 host_id;		/* 0: any host; else the sealed host's id */
	__u64 reasons_id;	/* fingerprint of the reason numbering the verdicts use */
	__u64 policy_id;
	__u8 audit;
	__u8 pad[3];
	__u32 n_exe;
	__u32 n_cgroup;
	__u32 n_uid;
	__u32 n_comm;
	__u32 pad2;
	__u8 verdict[LD_MAX_REASONS];	/* indexed by the kernel's reason value */
	struct ld_gate_exe exe[LD_GATE_MAX_EXC];
	struct ld_gate_id cgroup[LD_GATE_MAX_EXC];
	struct ld_gate_id uid[LD_GATE_MAX_EXC];
	struct ld_gate_comm comm[LD_GATE_MAX_EXC];
};

struct ld_gate_bundle {
	__u32 magic;		/* LD_GATE_MAGIC: how the gate recognises an update */
	__u32 sig_len;
	struct ld_gate_payload payload;
	__u8 sig[LD_GATE_MAX_SIG];	/* detached PKCS#7 (DER) over payload */
};

/*
 * The trust anchor and what a bundle must match, fixed at seal time in
 * .rodata (frozen by libbpf: no fd can change it).
 */
struct ld_gate_config {
	__u64 host_id;
	__u64 reasons_id;
	__u64 keyring;		/* bpf_lookup_user_key serial, or system keyring id */
	__u32 system;		/* 1: `keyring` is a bpf_lookup_system_key id */
	__u32 prefix_len;	/* bytes of the pinned signature prefix */
	__u32 sig_len;		/* exact DER length of a signature by the pinned key */
	__u32 pad;
	__u8 prefix[LD_GATE_MAX_PREFIX]; /* DER up to the RSA value: algorithms + key id */
};

/* The gate's own state, in .bss: the seal refuses every fd to it. */
struct ld_gate_state {
	__u64 version;		/* of the active signed policy */
	__u32 busy;
	__u32 pad;
};

/*
 * A mirror for `enforce status`, written by the gate after each update
 * (the policy maps themselves grant no fd under a signed seal).
 * Informational: root can overwrite it, never the policy.
 */
struct ld_gate_info {
	struct ld_policy policy;
	__u64 version;
	__u64 accepted;
	__u32 n_exc[5];		/* exe, cgroup, uid, comm, path in the active slot */
	__u32 pad;
	__u64 refused[LD_GATE_COUNTERS];
};

/* One ring-buffer record per update attempt. */
struct ld_gate_event {
	__u64 time_ns;
	__u64 version;		/* the bundle's (0 if unreadable) */
	__u64 current;		/* the active version at the time */
	__u32 pid;
	__u32 uid;
	__u32 why;		/* LD_GATE_ACCEPTED or LD_GATE_R_* */
	__s32 err;		/* negative errno returned (0 accepted) */
	char comm[LD_COMM_LEN];
};

#endif
