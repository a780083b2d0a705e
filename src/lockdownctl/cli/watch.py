"""``lockdownctl watch [FILE|-]``: lockdown denials and level changes in the kernel log.

Events are printed as they are found (``--json``: one JSON object per line,
then the envelope with the summary on the last line); the summary follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from typing import Any

    from ..events import Event
    from ..output import Result, Style


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", metavar="FILE|-",
                        help="a saved kernel log (dmesg, dmesg -T, /dev/kmsg records, syslog, journalctl "
                        "-o json); - reads standard input. Default: the kernel log (/dev/kmsg)")
    parser.add_argument("--follow", "-f", action="store_true",
                        help="keep watching for new lines until interrupted (SIGINT/SIGTERM); for the "
                        "kernel log and the journal, start from now unless --since-boot")
    parser.add_argument("--journal", action="store_true",
                        help="read the kernel messages of the systemd journal (journalctl -k -o json)")
    parser.add_argument("--since-boot", action="store_true",
                        help="with --follow: first report what the kernel log or journal holds since boot")
    parser.add_argument("--events", metavar="FILE", action="append", default=[],
                        help="also show saved events (JSON lines: watch --json or enforce events --json "
                        "output), merged with the log by time since boot; may be repeated")
    parser.add_argument("--enforcer", action="store_true",
                        help="also show the denials and audits the lockdownctl enforcer has buffered and the "
                        "tamper attempts its seal refused (consumes them), merged with the log by time since boot")
    parser.add_argument("--summary", action="store_true",
                        help="print only the summary: per reason and per process, with what to do")


def _inputs(args: argparse.Namespace) -> tuple[list[Iterator[Event]], list[str], Any]:
    from ..errors import InputError
    from ..klog import sources
    from ..root import Root

    if args.file is not None and args.journal:
        raise InputError("watch: give either FILE or --journal, not both")
    if args.events and args.follow:
        raise InputError("watch: --events cannot be merged with --follow (saved events have no future)")
    if args.enforcer and args.follow:
        raise InputError("watch: --enforcer cannot be merged with --follow (use lockdownctl enforce events --follow)")
    if args.since_boot and not args.follow:
        raise InputError("watch: --since-boot applies to --follow only (without --follow, watch reads "
                         "everything since boot already)")
    root = Root(args.root)
    counter = sources.Counter()
    streams: list[Iterator[Event]] = []
    if args.file == "-":
        import sys

        streams.append(sources.read_fd(sys.stdin.fileno(), "stdin", counter, name="-"))
        names = ["-"]
    elif args.file is not None:
        streams.append(sources.read_path(args.file, counter, args.follow))
        names = [args.file]
    elif args.journal:
        streams.append(sources.read_journal(root, counter, args.follow, args.since_boot))
        names = ["journal"]
    else:
        streams.append(sources.read_kmsg(root, counter, args.follow, args.since_boot))
        names = [root / "dev/kmsg"]
    for path in args.events:
        streams.append(iter(sources.read_events(path)))
        names.append(path)
    if args.enforcer:
        from ..bpf.decode import buffered_events
        from ..reasons import catalogue

        streams.append(iter(buffered_events(catalogue())))
        names.append("enforcer")
    return streams, names, counter


def _stop_on_sigterm() -> Any:
    import signal

    from ..klog.sources import Stop

    def handler(_signo: int, _frame: object) -> None:
        raise Stop

    return signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> Result:
    import json
    import signal

    from ..errors import EXIT_FINDINGS, EXIT_OK, EXIT_UNDECIDED
    from ..events import merge
    from ..klog.sources import Stop
    from ..klog.summary import Summary
    from ..output import Result, Style, write_stdout
    from ..output.progress import Progress

    streams, names, counter = _inputs(args)
    stream = merge(*streams) if len(streams) > 1 else streams[0]
    summary = Summary()
    style = Style.for_stream(color=args.color)
    progress = Progress("watch")
    show = not args.summary
    previous = _stop_on_sigterm()
    interrupted = False
    encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps with options builds one per call
    try:
        if args.follow:  # a blank terminal says nothing: say what is watched (standard error, terminal only)
            progress.say(f"watching {_what(args, names)} (Ctrl-C to stop)")
        for event in stream:
            summary.add(event)
            probe = summary.probe_number(event)  # repeated capability probes fold into the summary
            if show and (args.json or probe <= 1):
                line = encode(event.__dict__) if args.json else render_event(event, style)
                if probe and not args.json:
                    line += style.dim("  (a capability probe: repeats are counted in the summary)")
                write_stdout(line + "\n", flush=args.follow)
    except (Stop, KeyboardInterrupt):
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    data = summary.to_dict(counter.lines, names, counter.lost)
    if interrupted:
        progress.interrupted(_counts(data))
    data["interrupted"] = interrupted
    # An empty file or stdin was read, but there was nothing to read: not a clean log.
    data["empty"] = counter.bytes == 0 and not data["events"]
    code = EXIT_FINDINGS if data["denials"] or data["side_effects"] or data["unparsed"] or data["tamper_attempts"] \
        else EXIT_OK
    if data["empty"]:
        code = EXIT_UNDECIDED
    result = Result("watch", data, render_summary if args.summary else render_after_events, code)
    # JSON lines whenever lines may have gone out or a follower reads them: the
    # envelope with the summary is then one more line, never a pretty block.
    result.json_lines = show or args.follow
    return result


def _what(args: argparse.Namespace, names: list[str]) -> str:
    where = ", ".join(str(n) for n in names)
    if args.file == "-":
        return "standard input"
    if args.file is not None:
        return f"{where} from its start, then as it grows"
    return f"{where} " + ("since boot, then new lines" if args.since_boot else "for new lines from now")


def _counts(data: dict[str, Any]) -> str:
    """The one-line summary after Ctrl-C or SIGTERM."""
    lines = f"{data['lines']} lines read, " if data["lines"] is not None else ""
    return (f"{lines}{data['denials']} denial{'s' if data['denials'] != 1 else ''}, "
            f"{data['side_effects']} side effect{'s' if data['side_effects'] != 1 else ''}, "
            f"{len(data['level_changes'])} level change{'s' if len(data['level_changes']) != 1 else ''}")


def _time(event: Event) -> str:
    if event.time is not None:
        return f"[{event.time:12.6f}]"
    if event.wall_time is not None:
        return event.wall_time
    return f"line {event.lineno}" if event.lineno is not None else "-"


def _message(event: Event) -> str:
    """The raw line without the timestamp the event line already shows."""
    raw = event.raw
    if event.time is not None and raw.startswith("[") and 0 < (close := raw.find("] ")) < 20:
        return raw[close + 2 :]
    return raw


def render_event(event: Event, s: Style) -> str:
    """One line per event: time, kind, reason, level, process, dialect, log line."""
    if event.kind == "level-set":
        what = s.bold(f"locked down from {event.where}" + (f" ({event.level})" if event.level else ""))
        return f"{_time(event)} {'LEVEL':8} {what}  [{event.dialect}] {_message(event)}"
    if event.kind == "ratelimit":
        return (f"{_time(event)} {'RATELIM':8} {event.suppressed} messages suppressed  "
                f"[{event.dialect}] {_message(event)}")
    if event.kind == "unparsed":
        return f"{_time(event)} {'UNPARSED':8} {_message(event)}"
    if event.kind == "tamper":
        who = (event.comm or "-") + (f"[{event.pid}]" if event.pid is not None else "")
        return (f"{_time(event)} {s.bad('TAMPER  ')} {event.what or '?':18} {'seal':15} "
                f"{who:16} [{event.dialect}] {event.raw}")
    verdict = "AUDITED" if event.verdict == "audited" else "SIDE-EFF" if event.dialect == "side-effect" else "DENIED"
    who = event.comm or "-"
    if event.pid is not None:
        who += f"[{event.pid}]"
    colour = s.warn if event.verdict == "audited" else s.bad
    return (f"{_time(event)} {colour(f'{verdict:8}')} {event.reason or '?':18} {event.level or '?':15} "
            f"{who:16} [{event.dialect}] {_message(event)}")


def render_after_events(data: dict[str, Any], s: Style) -> str:
    return "\n" + render_summary(data, s) if data["events"] else render_summary(data, s)


def render_summary(data: dict[str, Any], s: Style) -> str:
    from ..output import table

    lines = []
    if data.get("empty"):
        return (f"{s.bold('Summary:')} {s.bad('nothing to check')}: {data['inputs'][0]} is empty "
                "(0 bytes; not a clean log)")
    head = (f"{data['denials']} denial{'s' if data['denials'] != 1 else ''}"
            f", {data['side_effects']} side effect{'s' if data['side_effects'] != 1 else ''}")
    if data["audited"]:
        head += f" ({data['audited']} audited, not denied)"
    head += f", {len(data['level_changes'])} level change{'s' if len(data['level_changes']) != 1 else ''}"
    if data["unparsed"]:
        head += f", {data['unparsed']} unparsed"
    if data.get("tamper_attempts"):
        head += f", {s.bad(str(data['tamper_attempts']))} tamper attempt{'s' if data['tamper_attempts'] != 1 else ''}"
    read = ", ".join(data["inputs"])
    if data["lines"] is not None:
        read += f", {data['lines']} lines"
    lines.append(f"{s.bold('Summary:')} {head} ({read})")
    for change in data["level_changes"]:
        when = f"[{change['time']:.6f}]" if change["time"] is not None else change["wall_time"] or (
            f"line {change['lineno']}" if change["lineno"] else "")
        level = f", {change['level']}" if change["level"] else ""
        lines.append(f"  Level:  locked down from {change['where']}{level} {s.dim(when)}")
    if data["by_reason"]:
        rows = []
        for r in data["by_reason"]:
            procs = ", ".join(f"{c} ({n})" for c, n in list(r["processes"].items())[:4])
            rows.append([r["reason"] or f"? {r['what']}", r["level"] or "?", str(r["denials"]),
                         str(r["side_effects"]), procs or "-", r["remedy"] or "-"])
        lines.append("")
        lines.append(table(rows, ["REASON", "LEVEL", "DENIALS", "SIDE EFFECTS", "PROCESSES", "WHAT TO DO"],
                           s.width, free=(4, 5)))
    if data["by_process"]:
        rows = [[p["comm"], str(p["denials"]),
                 ", ".join(f"{k.lstrip('?') or '?'} ({n})" for k, n in p["reasons"].items())]
                for p in data["by_process"]]
        lines.append("")
        lines.append(table(rows, ["PROCESS", "DENIALS", "REASONS"], s.width, free=(2,)))
    for entry in data.get("tamper", []):
        procs = ", ".join(f"{c} ({n})" for c, n in list(entry["processes"].items())[:4])
        lines.append(f"  Tamper: the seal refused {entry['rule']} {entry['attempts']} "
                     f"time{'s' if entry['attempts'] != 1 else ''}: {procs}")
    for probe in data.get("probes", []):
        span = (f" [{probe['first_time']:.6f}..{probe['last_time']:.6f}]"
                if probe["first_time"] is not None and probe["last_time"] is not None else "")
        lines.append(f"  Probes: {probe['comm']} asked about {probe['reason']} {probe['count']} "
                     f"time{'s' if probe['count'] != 1 else ''}{span}: {probe['remedy']}")
    for example in data["unparsed_examples"]:
        where = f"line {example['lineno']}" if example["lineno"] is not None else example["source"]
        lines.append(s.warn(f"unparsed ({where}): {example['raw'][:200]}"))
    for note in data["notes"]:
        lines.append(s.dim(f"note: {note}"))
    if data.get("interrupted"):
        lines.append(s.dim("note: stopped by a signal; the summary covers what was read until then"))
    return s.fit(lines)
