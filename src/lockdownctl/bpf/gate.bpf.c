// SPDX-License-Identifier: GPL-2.0
/*
 * lockdownctl gate: a sealed policy changes only through a newer policy
 * signed by the owner's key (issue #19, docs/signed-policy.md).
 *
 * Loaded by `lockdownctl enforce apply --seal --signed-by CERT` with the
 * enforcer's policy maps (bpf_map__reuse_fd: the very maps the enforcer
 * reads) and protected by the seal like the enforcer. `enforce update
 * BUNDLE` is one bpf(BPF_MAP_UPDATE_ELEM) on the gate's inbox map whose value
 * is the bundle (struct ld_gate_bundle, gate.h). Why a map update: it is an
 * ordinary, unprivileged-looking syscall that carries a user pointer to a
 * value of our own size, the `bpf` LSM hook sees it before the kernel acts
 * (and has a sleepable variant, needed by the signature kfunc and by
 * bpf_copy_from_user), and the syscall's errno carries the gate's verdict
 * back to the caller. No device, file or daemon is involved.
 *
 * The gate copies the bundle ONCE from user memory into a map value (kernel
 * memory), and every check and the install read that copy only: a thread
 * that rewrites the user buffer during the check changes nothing.
 *
 * Kernel facts it relies on (docs/signed-policy.md cites the sources):
 * - bpf_verify_pkcs7_signature, bpf_lookup_user_key/_system_key and
 *   bpf_key_put: Linux kernel commits 865b0566d8f1 ("bpf: Add
 *   bpf_verify_pkcs7_signature() kfunc") and f3cf4134c5c6 ("bpf: Add
 *   bpf_lookup_*_key() and bpf_key_put() kfuncs") (in v6.1); sleepable,
 *   usable by LSM programs (the TRACING kfunc hook);
 * - bpf_dynptr_from_mem takes map-value memory only on 6.1: the kernel copy
 *   lives in the `staging` map;
 * - the `bpf` hook gained `bool kernel` in Linux kernel commit 082f1db02c80
 *   ("security: Propagate caller information in bpf hooks") (in v6.15):
 *   built twice like the seal (scripts/build-bpf.sh), and calls from inside
 *   the kernel are ignored (they carry kernel pointers, not a bundle).
 */
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "gate.h"

#define EIO 5
#define EFAULT 14
#define EBUSY 16
#define EBADMSG 74
#define ESTALE 116
#define ENOKEY 126
#define EKEYREJECTED 129

char LICENSE[] SEC("license") = "GPL";

const volatile struct ld_gate_config cfg = {};
struct ld_gate_state state = {};

/*
 * A definition, not a declaration: libbpf matches a kfunc's prototype with
 * the kernel's and refuses a pointer to a forward declaration where the
 * kernel has a struct (members are not compared).
 */
struct bpf_key {
	int unused;
};
struct bpf_map;
extern struct bpf_key *bpf_lookup_user_key(__u32 serial, __u64 flags) __ksym;
extern struct bpf_key *bpf_lookup_system_key(__u64 id) __ksym;
extern void bpf_key_put(struct bpf_key *key) __ksym;
extern int bpf_verify_pkcs7_signature(struct bpf_dynptr *data_ptr, struct bpf_dynptr *sig_ptr,
				      struct bpf_key *trusted_keyring) __ksym;

/* The enforcer's maps (lockdown.bpf.c), reused by fd before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ld_policy);
} enf_policy SEC(".maps");

#define EXC_MAP(name, ktype, n)                   \
	struct {                                  \
		__uint(type, BPF_MAP_TYPE_HASH);  \
		__uint(max_entries, n);           \
		__type(key, ktype);               \
		__type(value, ld_mask);           \
	} name SEC(".maps")

EXC_MAP(enf_exe, struct ld_exe_key, 16384);
EXC_MAP(enf_cgroup, struct ld_id_key, 16384);
EXC_MAP(enf_uid, struct ld_id_key, 16384);
EXC_MAP(enf_comm, struct ld_comm_key, 1024);
/* A bundle carries none: every update empties the new slot's (and its {slot, 0, 0}). */
EXC_MAP(enf_path, struct ld_exe_key, 1024);

/* Where update requests arrive: user space writes a bundle as its value. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ld_gate_bundle);
} inbox SEC(".maps");

/* The kernel copy of the bundle being checked (one at a time: state.busy). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ld_gate_bundle);
} staging SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ld_gate_info);
} info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} gate_events SEC(".maps");

static __always_inline int report(__u32 why, int err, __u64 version)
{
	__u32 zero = 0;
	struct ld_gate_info *in = bpf_map_lookup_elem(&info, &zero);
	struct ld_gate_event *ev;

	if (in && why < LD_GATE_COUNTERS) {
		if (why == LD_GATE_ACCEPTED)
			__sync_fetch_and_add(&in->accepted, 1);
		else
			__sync_fetch_and_add(&in->refused[why], 1);
	}
	ev = bpf_ringbuf_reserve(&gate_events, sizeof(*ev), 0);
	if (ev) {
		ev->time_ns = bpf_ktime_get_ns();
		ev->version = version;
		ev->current = state.version;
		ev->pid = bpf_get_current_pid_tgid() >> 32;
		ev->uid = (__u32)bpf_get_current_uid_gid();
		ev->why = why;
		ev->err = err;
		bpf_get_current_comm(ev->comm, sizeof(ev->comm));
		bpf_ringbuf_submit(ev, 0);
	}
	return err;
}

struct slot_ctx {
	__u32 slot;
};

/* Delete every exception entry of one slot (the inactive one). */
#define CLEAR_CB(name, ktype)                                                              \
	static long name(struct bpf_map *map, ktype *key, ld_mask *val, struct slot_ctx *ctx) \
	{                                                                                  \
		if (key->slot == ctx->slot)                                                \
			bpf_map_delete_elem(map, key);                                     \
		return 0;                                                                  \
	}
CLEAR_CB(clear_exe, struct ld_exe_key)
CLEAR_CB(clear_id, struct ld_id_key)
CLEAR_CB(clear_comm, struct ld_comm_key)

static __always_inline int check_signature(struct ld_gate_bundle *b)
{
	struct bpf_dynptr data, sig;
	struct bpf_key *key;
	int err;

	key = cfg.system ? bpf_lookup_system_key(cfg.keyring) : bpf_lookup_user_key(cfg.keyring, 0);
	if (!key)
		return -ENOKEY;
	bpf_dynptr_from_mem(&b->payload, sizeof(b->payload), 0, &data);
	bpf_dynptr_from_mem(b->sig, cfg.sig_len, 0, &sig);
	err = bpf_verify_pkcs7_signature(&data, &sig, key);
	bpf_key_put(key);
	return err ? -EKEYREJECTED : 0;
}

/* Write the verified policy into the inactive slot, then flip `gen`. */
static __always_inline int install(struct ld_gate_payload *p)
{
	__u32 zero = 0, cur, new, i;
	struct ld_policy *pol = bpf_map_lookup_elem(&enf_policy, &zero);
	struct ld_gate_info *in;
	struct slot_ctx ctx;

	if (!pol)
		return -EIO;
	cur = pol->gen & 1;
	new = cur ^ 1;
	ctx.slot = new;
	/* Entries of the slot the previous update left inactive (no reader since). */
	bpf_for_each_map_elem(&enf_exe, clear_exe, &ctx, 0);
	bpf_for_each_map_elem(&enf_cgroup, clear_id, &ctx, 0);
	bpf_for_each_map_elem(&enf_uid, clear_id, &ctx, 0);
	bpf_for_each_map_elem(&enf_comm, clear_comm, &ctx, 0);
	bpf_for_each_map_elem(&enf_path, clear_exe, &ctx, 0);

	for (i = 0; i < LD_GATE_MAX_EXC; i++) {
		struct ld_exe_key k = { .slot = new };

		if (i >= p->n_exe)
			break;
		k.dev = p->exe[i].dev;
		k.ino = p->exe[i].ino;
		if (bpf_map_update_elem(&enf_exe, &k, &p->exe[i].mask, BPF_ANY))
			return -EIO;
	}
	for (i = 0; i < LD_GATE_MAX_EXC; i++) {
		struct ld_id_key k = { .slot = new };

		if (i >= p->n_cgroup)
			break;
		k.id = p->cgroup[i].id;
		if (bpf_map_update_elem(&enf_cgroup, &k, &p->cgroup[i].mask, BPF_ANY))
			return -EIO;
	}
	for (i = 0; i < LD_GATE_MAX_EXC; i++) {
		struct ld_id_key k = { .slot = new };

		if (i >= p->n_uid)
			break;
		k.id = p->uid[i].id;
		if (bpf_map_update_elem(&enf_uid, &k, &p->uid[i].mask, BPF_ANY))
			return -EIO;
	}
	for (i = 0; i < LD_GATE_MAX_EXC; i++) {
		struct ld_comm_key k = { .slot = new };

		if (i >= p->n_comm)
			break;
		__builtin_memcpy(k.comm, p->comm[i].comm, LD_COMM_LEN);
		if (bpf_map_update_elem(&enf_comm, &k, &p->comm[i].mask, BPF_ANY))
			return -EIO;
	}
	for (i = 0; i < LD_MAX_REASONS; i++)
		pol->verdict[new][i] = p->verdict[i];
	pol->audit[new] = p->audit ? 1 : 0;
	pol->scoped[new] = 0;	/* bundles carry no scope (signing.py says why) */
	pol->paths[new] = 0;	/* nor path exceptions: no file_open mark, no stale exemption */
	pol->policy_id = p->policy_id;
	pol->gen = pol->gen + 1;	/* one aligned 32-bit store: the switch */
	state.version = p->version;

	in = bpf_map_lookup_elem(&info, &zero);
	if (in) {
		in->policy = *pol;
		in->version = p->version;
		in->n_exc[0] = p->n_exe;
		in->n_exc[1] = p->n_cgroup;
		in->n_exc[2] = p->n_uid;
		in->n_exc[3] = p->n_comm;
		in->n_exc[4] = 0;
	}
	return 0;
}

static __always_inline int gate(void *uptr)
{
	__u32 zero = 0, i;
	struct ld_gate_bundle *b;
	__u64 version = 0;
	int err;

	if (__sync_val_compare_and_swap(&state.busy, 0, 1) != 0)
		return report(LD_GATE_R_BUSY, -EBUSY, 0);
	b = bpf_map_lookup_elem(&staging, &zero);
	if (!b) {
		err = report(LD_GATE_R_FAULT, -EFAULT, 0);
		goto out;
	}
	/* The one read of user memory: everything below uses the kernel copy. */
	if (bpf_copy_from_user(b, sizeof(*b), uptr)) {
		err = report(LD_GATE_R_FAULT, -EFAULT, 0);
		goto out;
	}
	version = b->payload.version;
	if (b->magic != LD_GATE_MAGIC || b->payload.magic != LD_GATE_MAGIC ||
	    b->payload.format != LD_GATE_FORMAT || b->payload.n_exe > LD_GATE_MAX_EXC ||
	    b->payload.n_cgroup > LD_GATE_MAX_EXC || b->payload.n_uid > LD_GATE_MAX_EXC ||
	    b->payload.n_comm > LD_GATE_MAX_EXC) {
		err = report(LD_GATE_R_FORMAT, -EBADMSG, version);
		goto out;
	}
	/* The pinned signer: its DER prefix (algorithms, key id, no certificates). */
	if (b->sig_len != cfg.sig_len || cfg.sig_len > LD_GATE_MAX_SIG) {
		err = report(LD_GATE_R_SIGNER, -EKEYREJECTED, version);
		goto out;
	}
	for (i = 0; i < LD_GATE_MAX_PREFIX; i++) {
		if (i >= cfg.prefix_len)
			break;
		if (b->sig[i] != cfg.prefix[i]) {
			err = report(LD_GATE_R_SIGNER, -EKEYREJECTED, version);
			goto out;
		}
	}
	err = check_signature(b);
	if (err) {
		report(err == -ENOKEY ? LD_GATE_R_NOKEY : LD_GATE_R_SIGNATURE, err, version);
		goto out;
	}
	if (b->payload.host_id && b->payload.host_id != cfg.host_id) {
		err = report(LD_GATE_R_HOST, -EBADMSG, version);
		goto out;
	}
	if (b->payload.reasons_id != cfg.reasons_id) {
		err = report(LD_GATE_R_REASONS, -EBADMSG, version);
		goto out;
	}
	if (version <= state.version) {
		err = report(LD_GATE_R_STALE, -ESTALE, version);
		goto out;
	}
	err = install(&b->payload);
	report(err ? LD_GATE_R_WRITE : LD_GATE_ACCEPTED, err, version);
out:
	state.busy = 0;
	return err;
}

SEC("lsm.s/bpf")
#ifdef LDCTL_BPF_KERNEL_ARG
int BPF_PROG(ldctl_gate_bpf, int cmd, union bpf_attr *attr, unsigned int size, bool kernel, int ret)
#else
int BPF_PROG(ldctl_gate_bpf, int cmd, union bpf_attr *attr, unsigned int size, int ret)
#endif
{
	__u32 magic = 0, lo, hi;
	void *uptr;

	if (ret)
		return ret;
	if (cmd != BPF_MAP_UPDATE_ELEM)
		return 0;
#ifdef LDCTL_BPF_KERNEL_ARG
	if (kernel)
		return 0;
#endif
	/*
	 * attr->value (u64 at offset 16) as two u32 loads: the verifier resolves
	 * a BTF-typed load in a union through its first member (the map-create
	 * struct), where offset 16 is map_flags (u32) and 20 inner_map_fd (u32);
	 * an 8-byte load there is refused ("access beyond the end of member").
	 * volatile: clang would merge two adjacent u32 loads into that u64 load.
	 */
	lo = *(volatile __u32 *)&attr->map_flags;
	hi = *(volatile __u32 *)&attr->inner_map_fd;
	uptr = (void *)((__u64)lo | (__u64)hi << 32);
	if (bpf_copy_from_user(&magic, sizeof(magic), uptr) || magic != LD_GATE_MAGIC)
		return 0;	/* not an update request: any other map update */
	return gate(uptr);
}
