#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lockdownctl developers
# GNU General Public License v2.0 only (see https://www.gnu.org/licenses/old-licenses/gpl-2.0.txt)
# SPDX-License-Identifier: GPL-2.0-only

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lockdownctl_info
short_description: Read the Linux kernel lockdown status with lockdownctl
version_added: 0.1.0
description:
  - Returns the C(data) of C(lockdownctl status --json) (level, its source with evidence, whether the
    lockdown LSM is active, whether the level can still be raised, Secure Boot, BPF LSM), and optionally
    of C(lockdownctl enforce status --json) (the loaded enforcer policy and its counters) and
    C(lockdownctl check --json) (readiness findings for a level).
  - Never changes anything; C(changed) is always V(false).
  - Failures (an unreadable O(root), a missing tool, C(enforce status) without root) fail the task with
    the tool's exit code in RV(rc) and its message in C(msg).
author:
  - lockdownctl developers (!UNKNOWN)
requirements:
  - lockdownctl on the managed node
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: N/A
    details: Nothing changes.
  platform:
    platforms: posix
options:
  root:
    description:
      - Read the tree below this directory instead of C(/) (the tool's C(--root)), for example a mounted
        image or a captured fixture.
    type: path
  enforcer:
    description:
      - Also return C(lockdownctl enforce status --json) as RV(enforcer). Needs root on the managed node;
        the enforcer is a property of the running kernel, so this cannot be combined with O(root).
    type: bool
    default: false
  check:
    description:
      - Also return the readiness findings of C(lockdownctl check --json) as RV(check).
    type: bool
    default: false
  check_level:
    description:
      - The level O(check) judges readiness for (C(check --level)); by default the next level above the
        running one.
    type: str
    choices: [integrity, confidentiality]
  executable:
    description:
      - Path of the lockdownctl program; by default C(lockdownctl) is searched for in E(PATH) and the sbin
        directories.
    type: path
seealso:
  - module: lockdownctl.lockdown.lockdownctl
"""

EXAMPLES = r"""
- name: Read the lockdown status
  lockdownctl.lockdown.lockdownctl_info:
  register: lockdown

- name: Fail on hosts that are not locked down to integrity
  ansible.builtin.assert:
    that: lockdown.status.level in ['integrity', 'confidentiality']
    fail_msg: "{{ inventory_hostname }}: lockdown is {{ lockdown.status.level }} ({{ lockdown.status.source.detail }})"

- name: Readiness for confidentiality and the enforcer's state
  lockdownctl.lockdown.lockdownctl_info:
    enforcer: true
    check: true
    check_level: confidentiality
  become: true
  register: lockdown
"""

RETURN = r"""
status:
  description:
    - The C(data) of C(lockdownctl status --json), unchanged (its keys are documented in lockdownctl(8), JSON OUTPUT).
  returned: always
  type: dict
  sample:
    level: integrity
    level_read_from: securityfs
    source: {kind: secure_boot, detail: "Secure Boot on and CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT=y"}
    lsm: {lockdown_active: true}
status_code:
  description:
    - The exit code of C(lockdownctl status); V(5) means undecided (nothing could be read, C(status.level) is V(null)).
  returned: always
  type: int
  sample: 0
enforcer:
  description: The C(data) of C(lockdownctl enforce status --json).
  returned: when O(enforcer=true)
  type: dict
  sample: {loaded: false, can_load: false, why_not: "BPF LSM is not usable: ..."}
check:
  description:
    - The C(data) of C(lockdownctl check --json); its exit code 1 (something breaks) is a result, not a failure.
  returned: when O(check=true)
  type: dict
rc:
  description: The exit code of the lockdownctl run that failed.
  returned: failure
  type: int
  sample: 2
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lockdownctl.lockdown.plugins.module_utils.lockdownctl import (
    LockdownctlError,
    argv,
    envelope,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path'),
            enforcer=dict(type='bool', default=False),
            check=dict(type='bool', default=False),
            check_level=dict(type='str', choices=['integrity', 'confidentiality']),
            executable=dict(type='path'),
        ),
        mutually_exclusive=[('root', 'enforcer')],
        required_by={'check_level': 'check'},
        supports_check_mode=True,
    )
    p = module.params
    executable = p['executable'] or module.get_bin_path('lockdownctl', required=True)
    result = dict(changed=False)
    warnings = []

    def run(words, root, ok):
        cmd = argv(executable, words, root)
        rc, out, err = module.run_command(cmd, environ_update={'LC_ALL': 'C'})
        return rc, envelope(cmd, rc, out, err, ok, warnings)

    try:
        # status: 5 is "undecided", a document with unknowns, not a failure
        result['status_code'], result['status'] = run(['status'], p['root'], (0, 5))
        if p['enforcer']:
            result['enforcer'] = run(['enforce', 'status'], None, (0,))[1]
        if p['check']:
            words = ['check'] + (['--level', p['check_level']] if p['check_level'] else [])
            result['check'] = run(words, p['root'], (0, 1, 5))[1]
    except LockdownctlError as exc:
        error = exc
    else:
        error = None
    for text in warnings:
        module.warn(text)
    if error is not None:  # outside the handler: the result carries no exception, only the tool's message
        module.fail_json(msg=error.msg, rc=error.rc, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
