"""Go's text/tabwriter as skopeo's `inspect --format` uses it: NewWriter(out, 8, 2, 2, ' ', 0), never flushed.

Cells end at a tab (or \\v); a line ends at \\n (or \\f). Columns of consecutive lines are padded to
the widest cell + padding (at least minwidth). Output leaves the writer only when a line without
tabs ends (or at \\f): skopeo never calls Flush, so whatever follows the last such line is lost,
exactly as `skopeo inspect --format` loses it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Cell:
    text: str = ""
    htab: bool = False


class TabWriter:
    def __init__(self, minwidth: int = 8, padding: int = 2, padchar: str = " ") -> None:
        self.minwidth = minwidth
        self.padding = padding
        self.padchar = padchar
        self.out: list[str] = []
        self._reset()

    def _reset(self) -> None:
        self.lines: list[list[_Cell]] = [[]]
        self.cell = _Cell()
        self.widths: list[int] = []

    def write(self, text: str) -> None:
        start = 0
        for i, ch in enumerate(text):
            if ch not in "\t\v\n\f":
                continue
            self.cell.text += text[start:i]
            start = i + 1
            self.cell.htab = ch == "\t"
            line = self.lines[-1]
            line.append(self.cell)
            self.cell = _Cell()
            if ch in "\n\f":
                self.lines.append([])
                if ch == "\f" or len(line) == 1:
                    self._flush()
        self.cell.text += text[start:]

    def _flush(self) -> None:
        if self.cell.text:
            self.lines[-1].append(self.cell)
            self.cell = _Cell()
        self._format(0, len(self.lines))
        self._reset()

    def _format(self, line0: int, line1: int) -> None:
        column = len(self.widths)
        this = line0
        while this < line1:
            line = self.lines[this]
            if column >= len(line) - 1:
                this += 1
                continue
            self._write_lines(line0, this)
            line0 = this
            width = self.minwidth
            while this < line1:
                line = self.lines[this]
                if column >= len(line) - 1:
                    break
                width = max(width, len(line[column].text) + self.padding)
                this += 1
            self.widths.append(width)
            self._format(line0, this)
            self.widths.pop()
            line0 = this
        self._write_lines(line0, line1)

    def _write_lines(self, line0: int, line1: int) -> None:
        for i in range(line0, line1):
            line = self.lines[i]
            for j, c in enumerate(line):
                self.out.append(c.text)
                if j < len(self.widths):
                    self.out.append(self.padchar * (self.widths[j] - len(c.text)))
            if i + 1 == len(self.lines):
                self.out.append(self.cell.text)
            else:
                self.out.append("\n")

    def flushed_output(self) -> str:
        """What has left the writer so far (skopeo's stdout)."""
        return "".join(self.out)


def tabwrite_unflushed(text: str) -> str:
    """What skopeo prints for template output `text`: tab-aligned, up to the last line without tabs."""
    w = TabWriter()
    w.write(text)
    return w.flushed_output()
