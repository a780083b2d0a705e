#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lockdownctl developers
# GNU General Public License v2.0 only (see https://www.gnu.org/licenses/old-licenses/gpl-2.0.txt)
# SPDX-License-Identifier: GPL-2.0-only

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lockdownctl
short_description: Set the Linux kernel lockdown level (at boot or now) and apply a BPF LSM lockdown policy
version_added: 0.1.0
description:
  - Sets the persistent kernel lockdown level through the boot loader with C(lockdownctl enable) or
    C(lockdownctl disable) (GRUB, GRUB with BLS, systemd-boot, unified kernel images, kernelstub,
    rpm-ostree; whichever the tool detects).
  - The boot configuration is read first with the tool's own C(--dry-run --json) plan; the module writes
    only when that plan changes something, so a second run reports C(changed=false).
  - Like M(ansible.posix.selinux), the module never reboots; it returns O(level)'s RV(reboot_required).
  - With O(now=true), O(level) is the running kernel's level instead of the boot configuration's, set with
    C(lockdownctl enable LEVEL --now) (a write to C(/sys/kernel/security/lockdown)). M(ansible.posix.selinux)
    keeps the persistent configuration and the running state apart the same way; here they are two tasks
    because the running level is one way until reboot and lasts only until then.
  - Optionally applies an enforcer policy (lockdownctl-policy(5)) with C(lockdownctl enforce apply),
    sealed until reboot with O(seal), or removes the loaded one with O(policy_state=absent).
  - The tool's refusals (a level that would be lowered without O(force), readiness findings that
    break at the level, a sealed policy) fail the task with the tool's exit code in RV(rc) and its
    message in C(msg).
author:
  - lockdownctl developers (!UNKNOWN)
requirements:
  - lockdownctl on the managed node (C(lockdownctl status) works)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The plan comes from C(lockdownctl enable|disable --dry-run --json) (with O(now), C(enable LEVEL --now
      --dry-run --json)) and C(lockdownctl enforce apply --dry-run --json); nothing is written.
  diff_mode:
    support: full
    details: The unified diff of every boot file the plan changes, the commands it runs, the running
      level before and after (O(now)), and the enforcer's policy before and after.
  platform:
    platforms: posix
options:
  level:
    description:
      - The lockdown level the kernel gets at boot. V(none) removes every C(lockdown=) the tool wrote
        or found (C(lockdownctl disable)).
      - Omit it to leave the boot configuration alone (for example to apply only O(policy)).
    type: str
    choices: [none, integrity, confidentiality]
  now:
    description:
      - Set O(level) on the running kernel instead of the boot configuration, with
        C(lockdownctl enable LEVEL --now), which writes it to C(/sys/kernel/security/lockdown).
        The boot configuration is not touched, and the level lasts until reboot.
      - Levels only go up until reboot. A kernel already at O(level) is left alone (C(changed=false));
        a lower O(level) fails the task with the tool's refusal (for V(none), which the tool does not
        write, with the same explanation).
      - In check mode only the tool's plan (C(--dry-run --json)) runs.
      - Needs the running system and root; mutually exclusive with O(root) (the tool refuses C(--now)
        with C(--root), even in a dry run).
    type: bool
    default: false
  force:
    description:
      - Pass C(--force) to C(lockdownctl enable) (go ahead although the readiness check finds
        something that breaks at O(level), or lower a higher C(lockdown=) already present). It never
        lowers the running level (O(now)); the kernel refuses that until reboot.
    type: bool
    default: false
  policy:
    description:
      - Path of an enforcer policy on the managed node (YAML, lockdownctl-policy(5)), applied with
        C(lockdownctl enforce apply).
      - The policy is not persistent across reboots; install it as C(/etc/lockdownctl/policy.yaml)
        and enable C(lockdownctl-enforce.service) for that.
    type: path
  policy_state:
    description:
      - V(present) applies O(policy); V(absent) removes the loaded enforcer (C(lockdownctl enforce remove)),
        which the tool refuses while a policy is sealed.
    type: str
    choices: [present, absent]
    default: present
  seal:
    description:
      - Seal the applied policy until reboot (C(enforce apply --seal)); a policy whose file sets
        C(seal) to true is sealed anyway.
    type: bool
    default: false
  audit:
    description:
      - Apply O(policy) in audit mode (C(enforce apply --audit)), which logs and denies nothing.
    type: bool
    default: false
  root:
    description:
      - Work on the tree below this directory instead of C(/) (the tool's C(--root)), for images and tests.
      - The enforcer loads into the running kernel, so with O(root) a policy is only planned (check mode);
        otherwise the tool's refusal fails the task.
    type: path
  executable:
    description:
      - Path of the lockdownctl program; by default C(lockdownctl) is searched for in E(PATH) and the sbin
        directories.
    type: path
notes:
  - Runs on the managed node as root; C(lockdownctl enable) without root can plan (check mode) but
    not write.
  - In check mode a policy whose id equals the loaded one is reported unchanged; outside check mode
    C(enforce apply) itself decides (it also notices a changed executable behind an exception).
seealso:
  - module: lockdownctl.lockdown.lockdownctl_info
  - module: ansible.posix.selinux
"""

EXAMPLES = r"""
- name: Lock the kernel down to integrity at the next boot
  lockdownctl.lockdown.lockdownctl:
    level: integrity
  register: lockdown

- name: Reboot when the level needs it
  ansible.builtin.reboot:
  when: lockdown.reboot_required

- name: Install the enforcer policy and seal it until reboot
  lockdownctl.lockdown.lockdownctl:
    policy: /etc/lockdownctl/policy.yaml
    seal: true

- name: Plan confidentiality on a mounted image, showing the diff
  lockdownctl.lockdown.lockdownctl:
    level: confidentiality
    root: /mnt/image
  check_mode: true
  diff: true

- name: Raise the running kernel to integrity now, until reboot (no reboot needed)
  lockdownctl.lockdown.lockdownctl:
    level: integrity
    now: true

- name: Remove lockdown= from the boot configuration
  lockdownctl.lockdown.lockdownctl:
    level: none
"""

RETURN = r"""
changed:
  description: Whether the boot configuration, the running level or the enforcer changed (or would, in check mode).
  returned: always
  type: bool
reboot_required:
  description:
    - Whether a reboot is needed for the running kernel to reach O(level), as in M(ansible.posix.selinux).
      The module never reboots. Always V(false) with O(now=true).
  returned: always
  type: bool
  sample: true
level:
  description: The requested boot level.
  returned: when O(level) is set
  type: str
  sample: integrity
running_level:
  description: The running kernel's level as the tool read it (before the change); V(null) when it could not be read.
  returned: when O(level) is set
  type: str
  sample: none
now:
  description: The running level's step (C(enable LEVEL --now --json), its C(data.now)).
  returned: when O(now=true)
  type: dict
  contains:
    from:
      description: The running level before.
      type: str
      sample: none
    to:
      description: The requested level.
      type: str
      sample: integrity
    written:
      description: Whether the level was written to C(/sys/kernel/security/lockdown) (V(false) in check mode).
      type: bool
    after:
      description: C(/sys/kernel/security/lockdown) read back after the write.
      type: str
      sample: none [integrity] confidentiality
    plan:
      description: The tool's plan, when it would write.
      type: str
boot:
  description: The boot configuration plan (or what was applied).
  returned: when O(level) is set and O(now=false)
  type: dict
  contains:
    setups:
      description: The boot setups the plan edits.
      type: list
      elements: str
      sample: [grub]
    changes:
      description: Every file the plan creates, modifies or removes, with why.
      type: list
      elements: dict
      sample: [{"setup": "grub", "path": "/etc/default/grub.d/99-lockdownctl.cfg", "action": "create",
                "why": "sorts after every file that assigns GRUB_CMDLINE_LINUX"}]
    commands:
      description: The regeneration commands of the plan.
      type: list
      elements: str
      sample: [update-grub]
    commands_not_run:
      description: Commands the tool did not run (with O(root), it never runs them).
      type: list
      elements: str
    backup:
      description: Where the tool saved the originals (below O(root)).
      type: str
    verified:
      description: Whether every entry and variable carries the level exactly once after the change.
      type: bool
enforcer:
  description: The policy step.
  returned: when O(policy) is set or O(policy_state=absent)
  type: dict
  contains:
    action:
      description: >-
        V(loaded), V(replaced), V(updated), V(unchanged) (from C(enforce apply)), V(removed),
        V(absent), or V(planned) in check mode.
      type: str
      sample: loaded
    policy_id:
      description: The policy's content id (C(enforce apply --dry-run --json)).
      type: str
      sample: fd141673033b1dbd
    live:
      description: C(lockdownctl enforce status --json) before the change (its C(data)).
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
    boot_summary,
    enforcer_plan,
    envelope,
    none_now_refusal,
    now_unchanged,
    plan_diff,
    reboot_required,
)


NOW_PATH = '/sys/kernel/security/lockdown'


class Runner(object):
    def __init__(self, module):
        self.module = module
        self.executable = module.params['executable'] or module.get_bin_path('lockdownctl', required=True)
        self.warnings = []

    def call(self, words, root=None):
        cmd = argv(self.executable, words, root)
        rc, out, err = self.module.run_command(cmd, environ_update={'LC_ALL': 'C'})
        return cmd, rc, out, err

    def run(self, words, root=None, ok=(0,)):
        cmd, rc, out, err = self.call(words, root)
        return envelope(cmd, rc, out, err, ok, self.warnings)


def boot_step(runner, p, check_mode, result, diffs):
    level = p['level']
    words = ['disable'] if level == 'none' else ['enable', level] + (['--force'] if p['force'] else [])
    plan = runner.run(words + ['--dry-run'], p['root'])
    changed = bool(plan.get('changed'))
    done = plan
    if changed and not check_mode:
        done = runner.run(words, p['root'])
        changed = bool(done.get('changed'))
    running = (plan.get('kernel') or {}).get('level')
    if 'kernel' not in plan:  # disable does not carry it: read it the way status does
        running = (runner.run(['status'], p['root'], ok=(0, 1, 5)) or {}).get('level')
    result['level'] = level
    result['running_level'] = running
    result['boot'] = boot_summary(done)
    result['reboot_required'] = reboot_required(level, running, changed)
    if changed:
        diffs.extend(plan_diff(plan))
    return changed


def now_step(runner, p, check_mode, result, diffs):
    """The running kernel's level (enable LEVEL --now): one way until reboot."""
    level = p['level']
    result['level'] = level
    if level == 'none':  # the tool has no verb for it: nothing to write, only a level to compare
        status = runner.run(['status'], ok=(0, 1, 5)) or {}
        running = status.get('level')
        result['running_level'] = running
        result['now'] = {'from': running, 'to': level, 'written': False, 'after': None}
        if running == 'none':
            return False
        raise LockdownctlError(none_now_refusal(running, status.get('level_read_from')), 1)
    words = ['enable', level, '--now'] + (['--force'] if p['force'] else [])
    cmd, rc, out, err = runner.call(words + ['--dry-run'])
    plan = envelope(cmd, rc, out, err, (0, 1), runner.warnings)
    result['running_level'] = (plan.get('kernel') or {}).get('level')
    now = plan.get('now') or {}
    result['now'] = {'from': now.get('from'), 'to': level, 'written': False, 'after': None, 'plan': now.get('plan')}
    if now_unchanged(level, plan):
        return False
    envelope(cmd, rc, out, err, (0,), [])  # any other refusal fails the task with the tool's own message
    if not check_mode:
        done = runner.run(words)
        now = done.get('now') or {}
        result['now'].update(written=bool(now.get('written')), after=now.get('after'))
    diffs.append({'before_header': NOW_PATH, 'after_header': NOW_PATH,
                  'before': {'level': result['running_level']}, 'after': {'level': level}})
    return True


def policy_step(runner, p, check_mode, result, diffs):
    if p['policy_state'] == 'absent':
        live = runner.run(['enforce', 'status'])
        if not live.get('loaded'):
            result['enforcer'] = {'action': 'absent', 'policy_id': None, 'live': live}
            return False
        if not check_mode:
            runner.run(['enforce', 'remove'])
        result['enforcer'] = {'action': 'planned' if check_mode else 'removed', 'policy_id': None, 'live': live}
        diffs.append({'before_header': 'enforcer', 'after_header': 'enforcer',
                      'before': {'loaded': True, 'policy_id': live.get('policy_id')}, 'after': {'loaded': False}})
        return True
    flags = (['--seal'] if p['seal'] else []) + (['--audit'] if p['audit'] else [])
    plan = runner.run(['enforce', 'apply', p['policy'], '--dry-run'] + flags, p['root'])
    planned_id = plan.get('policy_id')
    live = None if p['root'] else runner.run(['enforce', 'status'])
    if p['root'] and not check_mode:  # the tool refuses it, with its own message
        runner.run(['enforce', 'apply', p['policy']] + flags, p['root'])
    step = enforcer_plan(live, planned_id, check_mode)
    if step == 'sealed' and check_mode:  # outside check mode enforce apply refuses it, with its own message
        raise LockdownctlError(
            'lockdownctl enforce status: policy %s is sealed until reboot; %s (%s) cannot replace it'
            % (live.get('policy_id'), p['policy'], planned_id), 1)
    result['enforcer'] = {'action': 'unchanged', 'policy_id': planned_id, 'live': live}
    if step == 'unchanged':
        return False
    if check_mode:
        result['enforcer']['action'] = 'planned'
        changed = True
    else:
        done = runner.run(['enforce', 'apply', p['policy']] + flags)
        result['enforcer']['action'] = done.get('action')
        changed = done.get('action') != 'unchanged'
    if changed:
        before = {'loaded': bool(live and live.get('loaded'))}
        if live and live.get('loaded'):
            before.update({'policy_id': live.get('policy_id'), 'mode': live.get('mode'), 'sealed': live.get('sealed')})
        pol = plan.get('policy') or {}
        after = {'loaded': True, 'policy_id': planned_id, 'mode': pol.get('mode'), 'sealed': bool(pol.get('seal'))}
        diffs.append({'before_header': 'enforcer', 'after_header': 'enforcer (%s)' % p['policy'],
                      'before': before, 'after': after})
    return changed


def main():
    module = AnsibleModule(
        argument_spec=dict(
            level=dict(type='str', choices=['none', 'integrity', 'confidentiality']),
            force=dict(type='bool', default=False),
            now=dict(type='bool', default=False),
            policy=dict(type='path'),
            policy_state=dict(type='str', choices=['present', 'absent'], default='present'),
            seal=dict(type='bool', default=False),
            audit=dict(type='bool', default=False),
            root=dict(type='path'),
            executable=dict(type='path'),
        ),
        required_if=[('seal', True, ('policy',)), ('audit', True, ('policy',)), ('now', True, ('level',))],
        mutually_exclusive=[('now', 'root')],
        supports_check_mode=True,
    )
    p = module.params
    if p['policy_state'] == 'present' and not p['policy'] and not p['level']:
        module.fail_json(msg='one of level or policy is required (or policy_state=absent)')
    if p['policy_state'] == 'absent' and p['policy']:
        module.fail_json(msg='policy_state=absent removes the loaded enforcer: it takes no policy')
    result = dict(changed=False, reboot_required=False)
    diffs = []
    runner = Runner(module)
    try:
        if p['level'] and p['now']:
            result['changed'] = now_step(runner, p, module.check_mode, result, diffs) or result['changed']
        elif p['level']:
            result['changed'] = boot_step(runner, p, module.check_mode, result, diffs) or result['changed']
        if p['policy'] or p['policy_state'] == 'absent':
            result['changed'] = policy_step(runner, p, module.check_mode, result, diffs) or result['changed']
    except LockdownctlError as exc:
        error = exc
    else:
        error = None
    for text in runner.warnings:
        module.warn(text)
    if error is not None:  # outside the handler: the result carries no exception, only the tool's message
        module.fail_json(msg=error.msg, rc=error.rc, **result)
    if module._diff and diffs:
        result['diff'] = diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()
