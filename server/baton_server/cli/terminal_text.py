"""Untrusted text made safe to print on an operator's terminal.

`baton tail`, `baton chat` and `baton stats` print what customers, integrations, tools and
models wrote. A terminal obeys control characters in what it is sent: ESC and C1 sequences can
erase or rewrite lines already shown, set the window title, or write the operator's clipboard
(OSC 52); a carriage return overwrites the line it is on; bidi overrides and isolates reorder
what is displayed (text that reads differently than it is). Rich strips only a few control
characters (BEL, BS, VT, FF, CR) and lets ESC through, so the CLI passes every untrusted
string through `visible` before printing it. (Rich markup in that text is a separate matter:
the print sites also `rich.markup.escape` it, or print it where markup is off.)
"""

from __future__ import annotations

import re

# C0 controls except tab (\x09) and newline (\x0a), DEL, C1 controls, and the bidi embedding,
# override (U+202A-U+202E) and isolate (U+2066-U+2069) characters.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape_sequence(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every character a terminal would act on shown as a Python-style escape.

    - C0 control characters except tab and newline, DEL and C1 control characters (U+0080 to
      U+009F) become `\\xNN`: ESC is shown as the four characters `\\x1b`, BEL as `\\x07`, a
      carriage return as `\\x0d`, the C1 CSI as `\\x9b`.
    - Bidi embedding/override (U+202A to U+202E) and isolate (U+2066 to U+2069) characters
      become `\\uNNNN`: RIGHT-TO-LEFT OVERRIDE is shown as `\\u202e`.
    - Everything else is returned unchanged: printable text in any script, tab and newline.
      Backslashes are not doubled, so text that already reads `\\x1b` looks like an escaped
      ESC; that is ambiguous to read but harmless to print.

    The result contains none of the characters above, so it can be printed as is; it is still
    plain text, not Rich markup (escape it with `rich.markup.escape` before markup printing).
    """
    return _UNSAFE.sub(_escape_sequence, text)
