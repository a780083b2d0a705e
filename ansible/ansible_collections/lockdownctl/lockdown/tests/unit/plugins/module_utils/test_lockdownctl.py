# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-2.0-only
"""The modules' pure helpers. The envelopes are lockdownctl's own outputs
(``lockdownctl status --json --root /nonexistent``, ``enable integrity
--dry-run --json`` refusing to lower, ``enforce apply`` without BPF LSM),
trimmed to the keys the helpers read."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.lockdownctl.lockdown.plugins.module_utils.lockdownctl import (
    LockdownctlError,
    argv,
    enforcer_plan,
    envelope,
    none_now_refusal,
    now_unchanged,
    plan_diff,
    reboot_required,
)

NOT_A_DIR = {"lockdownctl": 1, "command": "status", "status": "error", "exit_code": 2, "data": None,
             "errors": [{"code": "input", "message": "/nonexistent: --root is not a directory"}]}
REFUSED = {"lockdownctl": 1, "command": "enable", "status": "findings", "exit_code": 1, "errors": [],
           "data": {"changed": False, "refused": "enable integrity would lower the boot level:\n"
                    "/r/etc/default/grub:9 (GRUB_CMDLINE_LINUX_DEFAULT) has lockdown=confidentiality"}}
GRUB_DIFF = ('--- /dev/null\n+++ b/etc/default/grub.d/99-lockdownctl.cfg\n@@ -0,0 +1,3 @@\n'
             '+GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX lockdown=confidentiality"\n')
PLAN = {"changed": True, "setups": [{"setup": "grub", "changes": [
    {"path": "/etc/default/grub.d/99-lockdownctl.cfg", "action": "create", "why": "sorts last", "diff": GRUB_DIFF}],
    "commands": [{"argv": ["update-grub"], "text": "update-grub", "why": "regenerate"}]}]}


def test_argv_adds_json_and_root():
    assert argv('/usr/bin/lockdownctl', ['status']) == ['/usr/bin/lockdownctl', 'status', '--json']
    assert argv('lockdownctl', ['enable', 'integrity', '--dry-run'], '/mnt') == [
        'lockdownctl', 'enable', 'integrity', '--dry-run', '--json', '--root', '/mnt']


def test_envelope_data_when_ok():
    doc = {"lockdownctl": 1, "command": "status", "status": "ok", "exit_code": 0, "data": {"level": "none"}}
    assert envelope(['lockdownctl', 'status'], 0, json.dumps(doc), '') == {"level": "none"}


def test_envelope_collects_the_tools_warnings_once():
    doc = {"lockdownctl": 1, "command": "enable", "status": "ok", "exit_code": 0, "data": {},
           "warnings": ["GRUB has no superuser password:\n anyone at the console", "readiness unknown"]}
    seen = ['readiness unknown']
    envelope(['lockdownctl', 'enable'], 0, json.dumps(doc), '', warnings=seen)
    assert seen == ['readiness unknown', 'GRUB has no superuser password: anyone at the console']


def test_envelope_error_names_verb_code_and_message():
    with pytest.raises(LockdownctlError) as exc:
        envelope(['lockdownctl', 'status', '--json'], 2, json.dumps(NOT_A_DIR),
                 'lockdownctl: error: /nonexistent: --root is not a directory\n')
    assert exc.value.rc == 2
    assert exc.value.msg == 'lockdownctl status exited 2: /nonexistent: --root is not a directory'


def test_envelope_refusal_is_one_line():
    with pytest.raises(LockdownctlError) as exc:
        envelope(['lockdownctl', 'enable', 'integrity'], 1, json.dumps(REFUSED), '')
    assert exc.value.rc == 1
    assert '\n' not in exc.value.msg
    assert exc.value.msg.startswith('lockdownctl enable exited 1: enable integrity would lower the boot level: /r/')


def test_envelope_without_json_uses_stderr():
    with pytest.raises(LockdownctlError) as exc:
        envelope(['lockdownctl', 'enforce', 'status'], 4, '', 'lockdownctl: error: enforce status needs root\n')
    assert exc.value.msg == 'lockdownctl enforce status exited 4: enforce status needs root'


def test_envelope_error_code_fails_even_if_allowed():
    doc = dict(NOT_A_DIR, status="error", exit_code=3)
    with pytest.raises(LockdownctlError):
        envelope(['lockdownctl', 'check'], 3, json.dumps(doc), '', ok=(0, 1, 3))


def test_plan_diff_prepared_per_file_and_commands():
    assert plan_diff(PLAN) == [{'prepared': GRUB_DIFF}, {'prepared': '# command: update-grub\n'}]
    assert plan_diff({"changed": False, "setups": [{"setup": "grub", "changes": [], "commands": []}]}) == []


@pytest.mark.parametrize('level, running, changed, expected', [
    ('integrity', None, True, True),          # unknown running level: a changed boot config needs a reboot
    ('integrity', None, False, False),
    ('integrity', 'integrity', True, False),  # already running at it
    ('confidentiality', 'integrity', True, True),
    ('confidentiality', 'none', False, True),  # enabled earlier, not rebooted yet
    ('integrity', 'confidentiality', False, False),
    ('none', 'integrity', True, True),
    ('none', 'integrity', False, False),      # may be Secure Boot's: no reboot lowers it
])
def test_reboot_required(level, running, changed, expected):
    assert reboot_required(level, running, changed) is expected


def test_enforcer_plan():
    planned = 'fd141673033b1dbd'
    assert enforcer_plan({"loaded": False, "can_load": True}, planned, False) == 'apply'
    assert enforcer_plan(None, planned, True) == 'apply'
    same = {"loaded": True, "policy_id": planned, "sealed": False}
    assert enforcer_plan(same, planned, True) == 'unchanged'
    assert enforcer_plan(same, planned, False) == 'apply'  # enforce apply itself says unchanged or updated
    assert enforcer_plan(dict(same, sealed=True), planned, False) == 'unchanged'
    assert enforcer_plan(dict(same, sealed=True, policy_id='0' * 16), planned, False) == 'sealed'


# lockdownctl enable integrity --now --dry-run --json in a guest at confidentiality, and at integrity
# (trimmed); the kernel configuration forcing integrity is refused by the safety check before --now
NOW_LOWER = {"action": "enable", "level": "integrity", "kernel": {"level": "confidentiality"},
             "now": {"from": "confidentiality", "to": "integrity", "written": False, "after": None,
                     "refused": "the running kernel is already at confidentiality: lockdown levels only go up "
                                "until reboot, so integrity cannot be set now (that would lower it from "
                                "confidentiality)"}}
NOW_SAME = {"action": "enable", "level": "integrity", "kernel": {"level": "integrity"},
            "now": {"from": "integrity", "to": "integrity", "written": False, "after": None,
                    "refused": "the running kernel is already at integrity: lockdown levels only go up "
                               "until reboot, so integrity cannot be set now"}}
NOW_FORCED = {"action": "enable", "level": "integrity", "kernel": {"level": "integrity"},
              "refused": "the kernel configuration already forces integrity (CONFIG_LOCK_DOWN_KERNEL_FORCE_"
                         "INTEGRITY=y): lockdown=integrity would change nothing"}
NOW_RAISE = {"action": "enable", "level": "integrity", "kernel": {"level": "none"},
             "now": {"from": "none", "to": "integrity", "written": False, "after": None, "refused": None,
                     "plan": "write integrity to /sys/kernel/security/lockdown (from none; cannot be undone "
                             "until reboot)"}}


def test_now_unchanged_only_at_the_same_level():
    assert now_unchanged('integrity', NOW_SAME) and now_unchanged('integrity', NOW_FORCED)
    assert not now_unchanged('integrity', NOW_LOWER) and not now_unchanged('integrity', NOW_RAISE)
    assert not now_unchanged('integrity', None)


def test_now_lowering_fails_with_the_tools_refusal():
    doc = {"lockdownctl": 1, "command": "enable", "status": "findings", "exit_code": 1, "errors": [],
           "data": NOW_LOWER}
    with pytest.raises(LockdownctlError) as exc:
        envelope(['lockdownctl', 'enable', 'integrity', '--now', '--dry-run', '--json'], 1, json.dumps(doc), '')
    assert exc.value.rc == 1
    assert exc.value.msg == 'lockdownctl enable exited 1: ' + NOW_LOWER['now']['refused']


def test_none_now_refusal_names_the_running_level():
    msg = none_now_refusal('integrity')
    assert 'at integrity' in msg and 'only go up until reboot' in msg and 'none cannot be set now' in msg


def test_none_now_refusal_never_takes_an_unknown_level_for_one():
    # lockdownctl status --json on a kernel without the lockdown LSM: level null, read from nowhere
    msg = none_now_refusal(None, '')
    assert 'could not be read' in msg and 'unknown' in msg and 'at None' not in msg
    assert 'from /sys/kernel/security/lockdown' in none_now_refusal(None, '/sys/kernel/security/lockdown')


def test_no_envelope_says_what_was_printed_instead():
    cmd = ['lockdownctl', 'enforce', 'apply', 'p.yaml', '--json']
    with pytest.raises(LockdownctlError) as exc:
        envelope(cmd, 2, '', '')
    assert exc.value.msg == ('lockdownctl enforce apply exited 2: no JSON envelope on its standard output '
                             '(nothing on it, nothing on standard error)')
    with pytest.raises(LockdownctlError) as exc:
        envelope(cmd, 2, 'usage: lockdownctl [-h]\n  VERB ...\n', '')
    assert exc.value.msg.endswith("(35 characters, starting 'usage: lockdownctl [-h] VERB ...')")
