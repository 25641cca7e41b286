"""Small file helpers shared by every stage: atomic writes, fetching a URL or path, strict TSV reading.

Layer ``core``: no project imports.

Inputs: only regular files and folders are read (:func:`regular_file`); a device, FIFO or socket would
never end. Outputs: written to a temporary file beside the target (:func:`temp_path`; its name holds our
mark, the host and the process id, so a later run removes the ones a killed run left, and no other
file) and renamed into place; :func:`output_set` removes on failure only what this run wrote.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

LIST_SEP = ";"


def is_url(source: str | os.PathLike) -> bool:
    return str(source).startswith(("http://", "https://", "ftp://"))


def current_umask() -> int:
    """The process umask (read by setting and restoring it; there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike) -> None:
    """Give a file or folder made by ``mkstemp``/``mkdtemp`` (always 0600/0700) the mode a plain
    ``open``/``mkdir`` would have had: 0666 (files) or 0777 (folders) minus the umask, so colleagues
    sharing a results folder can read outputs when the umask allows it."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~current_umask())


# ---------------------------------------------------------------------------------------------
# Inputs: regular files and folders only.


def regular_file(path: str | os.PathLike, what: str = "input", folder: bool = False) -> Path:
    """``path`` if it is a regular file (or, with ``folder``, a folder), following symbolic links.

    FileNotFoundError names a missing path; ValueError one that is a device, FIFO or socket (reading
    ``/dev/zero`` never ends) or a folder where a file is needed.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except OSError as error:
        raise OSError(error.errno, f"{what} cannot be read: {error.strerror}", str(path)) from None
    if stat.S_ISREG(info.st_mode) or (folder and stat.S_ISDIR(info.st_mode)):
        return path
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{path}: {what} is a folder; give a file")
    expected = "a file or a folder" if folder else "a file"
    raise ValueError(f"{path}: {what} is not a regular file (a device, FIFO or socket) and is not read; give {expected}")


# ---------------------------------------------------------------------------------------------
# Outputs: temporary files beside their targets, renamed into place; all of a command's or none.

TEMP_MARK = "rrtmp"  # in the name of every temporary file or folder we create beside an output
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMP = re.compile(rf"\.{TEMP_MARK}(\d+)-([0-9a-f]{{8}})-[0-9a-f]+")
_WRITTEN: contextvars.ContextVar[dict[Path, tuple] | None] = contextvars.ContextVar("rarerank_written", default=None)


def temp_path(target: str | os.PathLike) -> Path:
    """A new temporary path beside ``target``: ``.<name>.rrtmp<pid>-<host>-<random><suffix>`` (the suffix
    kept for writers that read the format from it). Temporary files of ``target`` that a process of this
    host left behind and that is no longer running are removed first (:func:`remove_stale_temps`)."""
    target = Path(target)
    remove_stale_temps(target)
    return target.with_name(f".{target.name}.{TEMP_MARK}{os.getpid()}-{_HOST}-{secrets.token_hex(4)}{target.suffix}")


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders of ``target`` left by a killed run: our naming pattern,
    this host, a process id that no longer runs. Returns what was removed."""
    target = Path(target)
    removed = []
    prefix = f".{target.name}.{TEMP_MARK}"
    try:
        entries = [e for e in os.scandir(target.parent) if e.name.startswith(prefix)]
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name, len(prefix) - len(TEMP_MARK) - 1)
        if not match or match.group(2) != _HOST or _running(int(match.group(1))):
            continue
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            shutil.rmtree(path) if entry.is_dir(follow_symlinks=False) else path.unlink()
            removed.append(path)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _named(error: BaseException, path: Path) -> BaseException:
    """An OS error without a file name (a full disk while writing names none) as one naming ``path``;
    any other error unchanged."""
    if not isinstance(error, OSError) or error.filename:
        return error
    return OSError(error.errno, error.strerror or os.strerror(error.errno or errno.EIO), str(path))


def _record_written(path: Path) -> None:
    """Remember that this run put ``path`` in place (read by :func:`output_set` on failure)."""
    written = _WRITTEN.get()
    if written is not None:
        written[path.resolve()] = _signature(path)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves no output behind. An OS error while
    writing (a full disk) names ``path``.
    """
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "")
    with atomic_path(path) as tmp, open(tmp, mode.replace("w", "x"), **kwargs) as handle:
        yield handle


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write (savefig, save_pretrained of a file),
    renamed onto ``path`` only if the block succeeds; see :func:`atomic_write`."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(target)
        yield tmp
        if tmp.exists():
            honour_umask(tmp)
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError, UnboundLocalError):
            os.unlink(tmp)
        named = _named(error, target)
        if named is error:
            raise
        raise named from error
    _record_written(target)


# Files that make a folder a model folder (a rarerank policy, a peft adapter, Hugging Face weights):
# no command writes an output inside one.
MODEL_MARKERS = ("rarerank_policy.json", "adapter_config.json", "model.safetensors", "pytorch_model.bin")


def model_folder_of(path: str | os.PathLike) -> Path | None:
    """The model folder ``path`` is or lies in (the nearest folder holding a model marker), or None."""
    resolved = Path(path).resolve()
    for folder in (resolved, *resolved.parents):
        if any((folder / marker).is_file() for marker in MODEL_MARKERS):
            return folder
    return None


@contextlib.contextmanager
def output_set(outputs: dict[str, str | os.PathLike | None], inputs: tuple = ()) -> Iterator[None]:
    """All outputs of one command, or none: refuse up front two options naming the same file, an
    output that is an input, a folder or inside a model folder; when the block fails, remove every
    output this run wrote that is still the file it wrote (not one a concurrent run put there since).

    ``outputs`` maps option names (for the message) to paths; None entries are ignored.
    """
    given = {name: Path(path) for name, path in outputs.items() if path is not None}
    seen: dict[Path, str] = {}
    for name, path in given.items():
        resolved = path.resolve()
        if resolved in seen:
            raise ValueError(f"{path}: given for both {seen[resolved]} and {name}; each output needs its own file")
        if path.is_dir():
            raise ValueError(f"{path}: {name} is a folder; give a file path")
        model = model_folder_of(path)
        if model is not None:
            raise ValueError(f"{path}: {name} would write inside the model folder {model}; choose a path outside it")
        seen[resolved] = name
    for source in inputs:
        if source is not None and Path(source).resolve() in seen:
            raise ValueError(f"{source}: is both an input and the {seen[Path(source).resolve()]} output; it would be overwritten")
    written: dict[Path, tuple] = {}
    token = _WRITTEN.set(written)
    try:
        yield
    except BaseException:
        for path in given.values():
            resolved = path.resolve()
            if resolved in written and _signature(path) == written[resolved]:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        raise
    finally:
        _WRITTEN.reset(token)


def _signature(path: Path) -> tuple | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")
MAX_NAME_BYTES = 200  # file systems allow 255; leaves room for a suffix such as ".tsv" or ".tmp"


def safe_filename(name: str) -> str:
    """One path component made from input data (a case id, a phenopacket stem, a URL's last part).

    Path separators and control characters become ``_``, as do leading dots (no ``..``, no hidden
    files); an empty name becomes ``_``; an overlong name is cut and given a hash so it stays unique.
    """
    cleaned = _UNSAFE_CHARS.sub("_", name)
    stripped = cleaned.lstrip(".")
    cleaned = "_" * (len(cleaned) - len(stripped)) + stripped or "_"
    if len(cleaned.encode("utf-8")) > MAX_NAME_BYTES:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        cleaned = cleaned.encode("utf-8")[: MAX_NAME_BYTES - 17].decode("utf-8", "ignore") + "-" + digest
    return cleaned


def path_inside(folder: str | os.PathLike, name: str, suffix: str = "") -> Path:
    """``folder/<safe name><suffix>``, checked to be directly inside ``folder`` (ValueError otherwise)."""
    folder = Path(folder)
    path = folder / (safe_filename(name) + suffix)
    if path.resolve().parent != folder.resolve():
        raise ValueError(f"file name {name!r} would leave its output folder {folder}")
    return path


def fetch(source: str | os.PathLike, dest: str | os.PathLike, timeout: float = 60.0) -> Path:
    """Copy a local file or download a URL to ``dest`` atomically; return ``dest``.

    Raises ``FileNotFoundError`` for a missing local path and ``ConnectionError`` (naming the URL)
    when a URL cannot be reached.
    """
    dest = Path(dest)
    if is_url(source):
        try:
            with urllib.request.urlopen(str(source), timeout=timeout) as response:
                with atomic_write(dest, "wb") as out:
                    shutil.copyfileobj(response, out)
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise ConnectionError(f"cannot download {source}: {error}") from error
        return dest
    path = regular_file(source)
    if path.resolve() != dest.resolve():
        with open(path, "rb") as src, atomic_write(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    return dest


def join_list(items) -> str:
    return LIST_SEP.join(items)


def split_list(text: str | float | None) -> list[str]:
    """Inverse of :func:`join_list`; empty strings and NaN give an empty list."""
    if text is None or not isinstance(text, str) or not text.strip():
        return []
    return [item.strip() for item in text.split(LIST_SEP) if item.strip()]


# ---------------------------------------------------------------------------------------------
# Tab-separated tables, read strictly: tabs separate cells, quotes are text, one line is one row.

MAX_LINE_BYTES = 1 << 20  # a longer table line is a row that does not parse (real rows are < 10 kB)


@dataclass(frozen=True)
class TableRow:
    line: int  # 1-based line number in the file
    cells: dict[str, str]  # column -> cell ("" for columns the row lacks); empty when ``problem`` is set
    problem: str = ""  # why the line is not a row: too long, not UTF-8, more cells than columns


class Table:
    """A UTF-8 tab-separated table (a byte-order mark is fine) read one line at a time.

    No quoting: a ``"`` is text, so a stray quote cannot merge rows. Blank lines are skipped; a line
    with fewer cells than the header leaves the missing columns empty; a line with more cells, longer
    than ``max_line_bytes`` or not UTF-8 comes back as a row with a ``problem`` (the caller makes it
    a QC row or an error). Memory stays within one line whatever the file. Raises FileNotFoundError
    or ValueError (naming the file) for a missing or non-regular path or an unreadable header.
    """

    def __init__(self, path: str | os.PathLike, what: str = "table", max_line_bytes: int = MAX_LINE_BYTES):
        self.path = regular_file(path, what)
        self.max_line_bytes = max_line_bytes
        self._handle = open(self.path, "rb")
        self.line = 0
        first = self._next_line()
        if first is None:
            self.header: list[str] = []
            return
        raw, problem = first
        if problem:
            self.close()
            raise ValueError(f"{self.path}, line 1 (the header): {problem}")
        self.header = [c.strip() for c in raw.split("\t")]

    def _next_line(self) -> tuple[str, str] | None:
        """(text without the line break, problem) of the next line, or None at the end."""
        data = self._handle.readline(self.max_line_bytes + 1)
        if not data:
            return None
        self.line += 1
        if len(data) > self.max_line_bytes and not data.endswith(b"\n"):
            while data and not data.endswith(b"\n"):  # skip the rest of the line, a chunk at a time
                data = self._handle.readline(1 << 20)
            return "", f"longer than {self.max_line_bytes:,} bytes, the most one table line may hold; not read"
        if self.line == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            return "", f"not UTF-8 text (byte 0x{data[error.start]:02x} at column {error.start + 1}); save the file as UTF-8"
        return text.rstrip("\n").rstrip("\r"), ""

    def __iter__(self) -> Iterator[TableRow]:
        width = len(self.header)
        while (item := self._next_line()) is not None:
            raw, problem = item
            if problem:
                yield TableRow(self.line, {}, problem)
                continue
            if not raw.strip():
                continue
            cells = raw.split("\t")
            if len(cells) > width:
                yield TableRow(self.line, {}, f"{len(cells)} cells, the header has {width} columns (a tab inside a cell?)")
                continue
            yield TableRow(self.line, dict(zip(self.header, cells + [""] * (width - len(cells)))))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_bounded(handle: BinaryIO, max_bytes: int) -> bytes | None:
    """Read a stream to the end, or return None as soon as it proves longer than ``max_bytes``;
    memory stays within ``max_bytes`` plus one chunk whatever the stream's size (zip bombs)."""
    chunks, total = [], 0
    while chunk := handle.read(min(1 << 20, max_bytes + 1 - total)):
        total += len(chunk)
        if total > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class FolderScan:
    """What :func:`scan_folder` found, every list sorted by path."""

    files: list[Path] = field(default_factory=list)
    empty_folders: list[Path] = field(default_factory=list)  # no file anywhere below
    problems: list[tuple[Path, str, str]] = field(default_factory=list)  # (path, reason, detail)


BROKEN_LINK = "broken_link"
LINK_LOOP = "symlink_loop"
NOT_A_FILE = "not_a_regular_file"
UNREADABLE = "unreadable"


def scan_folder(root: str | os.PathLike) -> FolderScan:
    """Every file below ``root``, following symbolic links to files and folders; a link that points
    back to a folder on its own path (a loop) is entered once and reported, as are dangling links,
    sockets/FIFOs and unreadable folders. Linear in the number of files and folders."""
    root = Path(root)
    scan = FolderScan()
    folders: list[Path] = []
    stack = [(root, (os.stat(root).st_dev, os.stat(root).st_ino), frozenset())]
    while stack:
        folder, key, ancestors = stack.pop()
        folders.append(folder)
        ancestors = ancestors | {key}
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            scan.problems.append((folder, UNREADABLE, f"cannot list folder: {error.strerror or error}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                info = os.stat(entry.path)  # follows links
            except OSError as error:
                reason = BROKEN_LINK if entry.is_symlink() else UNREADABLE
                target = os.readlink(entry.path) if entry.is_symlink() else ""
                scan.problems.append((path, reason, f"link to {target!r}, which does not exist" if target else str(error)))
                continue
            if stat.S_ISDIR(info.st_mode):
                child = (info.st_dev, info.st_ino)
                if child in ancestors:
                    scan.problems.append((path, LINK_LOOP, f"link to {os.readlink(entry.path)!r}, a folder above it (a loop)"))
                else:
                    stack.append((path, child, ancestors))
            elif stat.S_ISREG(info.st_mode):
                scan.files.append(path)
            else:
                scan.problems.append((path, NOT_A_FILE, "not a regular file (socket, FIFO or device)"))
    with_files = set()
    for file in scan.files:  # mark each folder holding a file and its ancestors, stopping at marked ones
        folder = file.parent
        while folder not in with_files and folder != root:
            with_files.add(folder)
            folder = folder.parent
    scan.empty_folders = sorted(f for f in folders if f != root and f not in with_files)
    scan.files.sort()
    scan.problems.sort()
    return scan
