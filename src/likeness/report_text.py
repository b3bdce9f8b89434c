"""Text from outside (a file name, a library's reason) as a reader may see it: ``printable``.

A file name is chosen by whoever made the file. A right-to-left override makes
``clip\u202egnp.mp4`` read as ``clip4pm.png``, a newline or an escape can start a line of its
own or move a terminal's cursor. Every command's output and every report page (the render
report, the evidence page, the faceset report) shows such text through :func:`printable`.
"""

from __future__ import annotations


def printable(text: object) -> str:
    """``text`` with what a terminal or a page would act on written as an escape (a newline as
    ``\\n``, an ESC as ``\\x1b``, a right-to-left override as ``\\u202e``): a file name or a
    manifest's text cannot start a line of its own, move the cursor over the line before, or
    turn the text after it around. Other characters (Hangul, accents) stay as they are.

    >>> printable("clip\\u202egnp.mp4")
    'clip\\\\u202egnp.mp4'
    >>> printable("직캠 원본.mp4")
    '직캠 원본.mp4'
    """
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))
