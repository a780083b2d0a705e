"""The command line a unified kernel image (UKI) carries in its ``.cmdline`` PE section.

systemd-stub passes that section to the kernel and, with Secure Boot on,
ignores whatever the boot loader passes (systemd-stub(7)). Read with pefile.
"""

from __future__ import annotations

from ..errors import InputError


def uki_cmdline(data: bytes, where: str) -> str | None:
    """The ``.cmdline`` section's text (up to its NUL), or None when the image has none."""
    try:
        import pefile  # type: ignore[import-untyped]
    except ImportError:
        raise InputError("reading a UKI needs the Python package pefile (a dependency of lockdownctl: "
                         "pip install pefile)") from None
    try:
        pe = pefile.PE(data=data, fast_load=True)
    except pefile.PEFormatError as exc:
        raise InputError(f"{where}: not a PE image (UKI): {exc.value}") from None
    # No pe.close(): an image parsed from bytes holds no file or mmap, and close()
    # would only run a full gc.collect() (pefile's _close_data), milliseconds per image.
    for section in pe.sections:
        if section.Name.rstrip(b"\0") == b".cmdline":
            raw = section.get_data()[: section.Misc_VirtualSize or None]
            try:
                text: str = raw.split(b"\0", 1)[0].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{where}:.cmdline: not text: invalid UTF-8 at byte {exc.start}") from None
            return text
    return None
