"""Where items come from: a watched folder of JSONL/CSV files, and standard input.

The folder is read file by file (sorted by name), only up to each file's last complete line
(a file still being written is read on as it grows), from the offset stored in the database
with the last batch taken from it - so a restarted monitor reads on where it stopped and never
re-reads a stored batch. A line that is not valid JSON or UTF-8 becomes a rejected item with its
file:line.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import sys
import threading
from pathlib import Path

from .items import Rejected, from_csv_row

SUFFIXES = (".jsonl", ".ndjson", ".csv")


def _decode(line: bytes, where: str):
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return Rejected(where, "the line is not UTF-8 text", line[:200].decode("utf-8", "replace"))


def parse_json_line(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        return Rejected(where, f"not valid JSON ({e.msg} at column {e.colno})", text[:500])


class Folder:
    """``read(offsets, limit)`` -> (raws, new offsets): at most ``limit`` items from the files
    that have grown past their stored offsets."""

    def __init__(self, folder: str | Path):
        self.root = Path(folder).expanduser()

    def files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir()
                      if p.is_file() and p.suffix.lower() in SUFFIXES
                      and not p.name.startswith("."))

    def read(self, offsets: dict[str, tuple[int, int]], limit: int):
        raws: list = []
        new: dict[str, tuple[int, int]] = {}
        for path in self.files():
            name = path.name
            off, line = offsets.get(name, (0, 0))
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size <= off:
                continue
            got, end = self._read_file(path, off, line, limit - len(raws))
            if end != (off, line):
                new[name] = end
            raws.extend(got)
            if len(raws) >= limit:
                break
        return raws, new

    def _read_file(self, path: Path, off: int, line: int, limit: int):
        csv_file = path.suffix.lower() == ".csv"
        out = []
        with open(path, "rb") as f:
            header = None
            if csv_file:
                first = f.readline()
                if not first.endswith(b"\n"):
                    return out, (off, line)  # the header is not complete yet
                if off == 0:
                    off, line = len(first), 1
                header = next(csv.reader([first.decode("utf-8-sig", "replace")]))
            f.seek(off)
            pos, n = off, line
            while len(out) < limit:
                raw = f.readline()
                if not raw.endswith(b"\n"):
                    break  # end of file, or a line still being written
                pos += len(raw)
                n += 1
                where = f"{path.name}:{n}"
                if not raw.strip():
                    continue
                text = _decode(raw, where)
                if isinstance(text, Rejected):
                    out.append((text, where))
                elif csv_file:
                    # a quoted cell may hold newlines: read on until the row is complete
                    row_start = (pos - len(raw), n - 1)
                    while text.count('"') % 2:
                        more = f.readline()
                        if not more.endswith(b"\n"):
                            return out, row_start  # the row is still being written
                        pos += len(more)
                        n += 1
                        text += "\n" + more.decode("utf-8", "replace").rstrip("\r\n")
                    try:
                        cells = next(csv.reader(io.StringIO(text)))
                        row = dict(zip(header, cells))
                        if len(cells) > len(header):
                            row[None] = cells[len(header):]
                        out.append((from_csv_row(row), where))
                    except (csv.Error, StopIteration) as e:
                        out.append((Rejected(where, f"not a valid CSV row ({e})", text[:500]),
                                    where))
                else:
                    out.append((parse_json_line(text, where), where))
            return out, (pos, n)


class Stdin:
    """Lines of standard input read by a thread into a queue; ``take(limit, wait)`` returns
    what arrived (at most ``limit``), and ``done`` once the input is closed and drained."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdin.buffer
        self.q: queue.Queue = queue.Queue(maxsize=10_000)  # bounded: the reader waits
        self.closed = False
        self.n = 0
        threading.Thread(target=self._pump, daemon=True, name="monitor-stdin").start()

    def _pump(self):
        for raw in self.stream:
            self.q.put(raw)
        self.q.put(None)

    @property
    def done(self) -> bool:
        return self.closed and self.q.empty()

    def take(self, limit: int, wait: float):
        out = []
        try:
            first = self.q.get(timeout=wait)
        except queue.Empty:
            return out
        pending = [first]
        while len(pending) + len(out) < limit:
            try:
                pending.append(self.q.get_nowait())
            except queue.Empty:
                break
        for raw in pending:
            if raw is None:
                self.closed = True
                continue
            self.n += 1
            where = f"stdin:{self.n}"
            if not raw.strip():
                continue
            text = _decode(raw if isinstance(raw, bytes) else raw.encode(), where)
            out.append((text if isinstance(text, Rejected) else parse_json_line(text, where),
                        where))
        return out
