# -*- coding: utf-8 -*-
# Copyright: lockdownctl developers
# GNU General Public License v2.0 only (see https://www.gnu.org/licenses/old-licenses/gpl-2.0.txt)
# SPDX-License-Identifier: GPL-2.0-only
"""Helpers shared by the lockdownctl modules: the command line, the --json
envelope, the boot plan's diff and whether a reboot is needed.

Everything here is pure (no AnsibleModule), so ansible-test units checks it
against real outputs of lockdownctl.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

LEVELS = ('none', 'integrity', 'confidentiality')

# The tool's exit codes that mean "no result" (lockdownctl(8), EXIT STATUS):
# 2 usage or input error, 3 kernel feature missing, 4 needs root,
# 70 internal error, 74 output not writable.
ERROR_CODES = frozenset((2, 3, 4, 70, 74))


class LockdownctlError(Exception):
    """lockdownctl failed: its exit code and its one-line message."""

    def __init__(self, msg, rc):
        super(LockdownctlError, self).__init__(msg)
        self.msg = msg
        self.rc = rc


def argv(executable, words, root=None):
    """The command line: the verb's words, --json, and --root when a root is given."""
    out = [executable] + list(words) + ['--json']
    if root:
        out += ['--root', root]
    return out


def one_line(text):
    """Text as one line: the tool's messages can quote multi-line values."""
    return ' '.join(str(text).split())


def _stderr_message(stderr):
    for line in (stderr or '').splitlines():
        line = line.strip()
        if line.startswith('lockdownctl: error: '):
            return line[len('lockdownctl: error: '):]
    lines = [line.strip() for line in (stderr or '').splitlines() if line.strip()]
    return lines[-1] if lines else ''


def _no_envelope(stdout):
    """What stood on standard output instead of an envelope (empty, or its start),
    so that a failure nobody can reproduce still says what the tool printed."""
    if not (stdout or '').strip():
        return 'no JSON envelope on its standard output (nothing on it, nothing on standard error)'
    head = one_line(stdout)
    return 'no JSON envelope on its standard output (%d characters, starting %r)' % (
        len(stdout), head[:120])


def envelope(cmd, rc, stdout, stderr, ok=(0,), warnings=None):
    """The ``data`` of lockdownctl's --json envelope when ``rc`` is in ``ok``;
    otherwise LockdownctlError naming the verb, the exit code and the tool's
    own message (the envelope's first error, a refusal, or its stderr line).
    The envelope's warnings are appended to ``warnings`` (once each)."""
    verb = ' '.join(cmd[1:3]) if len(cmd) > 2 and cmd[1] == 'enforce' else (cmd[1] if len(cmd) > 1 else '?')
    try:
        doc = json.loads(stdout) if stdout else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get('lockdownctl') != 1:
        why = _stderr_message(stderr) or _no_envelope(stdout)
        raise LockdownctlError('lockdownctl %s exited %d: %s' % (verb, rc, one_line(why)), rc)
    data = doc.get('data')
    if warnings is not None:
        for text in doc.get('warnings') or []:
            if isinstance(text, str) and one_line(text) not in warnings:
                warnings.append(one_line(text))
    if rc in ok and rc not in ERROR_CODES and doc.get('status') != 'error':
        return data
    why = ''
    for err in doc.get('errors') or []:
        if isinstance(err, dict) and err.get('message'):
            why = err['message']
            break
    if not why and isinstance(data, dict):
        why = data.get('refused') or ''
        if not why:
            problems = data.get('problems') or []
            why = problems[0] if problems and isinstance(problems[0], str) else ''
        if not why and isinstance(data.get('now'), dict):
            why = data['now'].get('refused') or ''
    why = why or _stderr_message(stderr) or 'status %s' % doc.get('status')
    raise LockdownctlError('lockdownctl %s exited %d: %s' % (verb, rc, one_line(why)), rc)


def plan_diff(data):
    """Ansible's diff list from an enable/disable plan: one prepared unified
    diff per file the plan changes, and the commands it runs (or would run)."""
    diffs = []
    commands = []
    for setup in (data or {}).get('setups') or []:
        for change in setup.get('changes') or []:
            text = change.get('diff') or ''
            if not text:
                text = '# %s %s: %s\n' % (change.get('action'), change.get('path'), change.get('why'))
            diffs.append({'prepared': text})
        for cmd in setup.get('commands') or []:
            commands.append(cmd.get('text') or ' '.join(cmd.get('argv') or []))
    if commands:
        diffs.append({'prepared': ''.join('# command: %s\n' % c for c in commands)})
    return diffs


def level_rank(level):
    """none < integrity < confidentiality; None (unknown) is -1."""
    return LEVELS.index(level) if level in LEVELS else -1


def reboot_required(level, running, changed):
    """Whether the boot-time ``level`` takes a reboot to reach the running kernel.

    A changed boot configuration needs one unless the kernel already runs at
    that level. Without a change, a kernel running below a level that the
    boot configuration already holds (enabled earlier, not rebooted yet)
    needs one too. A running level above a wanted ``none`` without a change
    is left alone: it may be forced by Secure Boot or the kernel's
    configuration, which no reboot changes.
    """
    if running not in LEVELS:
        return bool(changed)
    if changed:
        return running != level
    return level_rank(running) < level_rank(level)


def boot_summary(data):
    """What the module returns about the boot configuration."""
    data = data or {}
    applied = data.get('applied') or {}
    return {
        'setups': [s.get('setup') for s in data.get('setups') or []],
        'changes': [{'setup': s.get('setup'), 'path': c.get('path'), 'action': c.get('action'), 'why': c.get('why')}
                    for s in data.get('setups') or [] for c in s.get('changes') or []],
        'commands': [c.get('text') for s in data.get('setups') or [] for c in s.get('commands') or []],
        'commands_not_run': applied.get('commands_not_run') or [],
        'backup': applied.get('backup'),
        'verified': data.get('verified'),
    }


def enforcer_plan(live, planned_id, check_mode):
    """Decide the policy step from ``enforce status`` (``live``) and the dry
    run's policy id: 'unchanged' (nothing to do), 'apply' (run enforce apply
    and let it say whether it changed anything) or 'sealed' (a different
    policy is sealed until reboot: enforce apply refuses it before loading
    anything, so outside check mode the module runs it for the tool's own
    exit code and message)."""
    if not live or not live.get('loaded'):
        return 'apply'
    if live.get('policy_id') == planned_id:
        if live.get('sealed') or check_mode:
            return 'unchanged'
        return 'apply'
    if live.get('sealed'):
        return 'sealed'
    return 'apply'


def now_unchanged(level, data):
    """Whether ``enable LEVEL --now --dry-run --json`` (its ``data``) found the
    running kernel already at ``level``: no change for the module, although
    the tool refuses it (levels only go up until reboot; a level the kernel
    configuration forces is refused before that as changing nothing). A
    kernel above ``level`` is the tool's refusal, which fails the task."""
    return ((data or {}).get('kernel') or {}).get('level') == level


def none_now_refusal(running, read_from=None):
    """The message for ``level: none`` with ``now``: the tool has no verb for it
    (``enable`` takes integrity or confidentiality), and the kernel refuses any
    lower level until reboot. A level that could not be read is said so, never
    taken for one."""
    if running not in LEVELS:
        return ('lockdownctl status: the running lockdown level could not be read%s, so whether it is none '
                'is unknown' % (' from %s' % read_from if read_from else ''))
    return ('lockdownctl status: the running kernel is at %s: lockdown levels only go up until reboot, '
            'so none cannot be set now (level none without now, then reboot)' % running)
