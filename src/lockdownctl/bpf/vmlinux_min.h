/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types lockdown.bpf.c reads, as CO-RE relocatable
 * definitions: libbpf matches each field by name in the running kernel's BTF
 * at load time, so these need only the fields used, in any order. Keeping
 * them here instead of a 3 MB generated vmlinux.h makes the object rebuild
 * bit for bit from the repository alone (tests/host/test_bpf_build.py).
 */
#ifndef LOCKDOWNCTL_VMLINUX_MIN_H
#define LOCKDOWNCTL_VMLINUX_MIN_H

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct super_block {
	unsigned int s_dev;	/* dev_t */
};

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
};

struct file {
	struct inode *f_inode;
};

struct mm_struct {
	struct file *exe_file;
};

struct task_struct {
	struct mm_struct *mm;
};

#pragma clang attribute pop

#endif
