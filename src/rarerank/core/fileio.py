"""Small file helpers shared by every stage: atomic writes, fetching a URL or path, TSV lists.

Layer ``core``: no project imports.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
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


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves no output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
        honour_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def output_set(outputs: dict[str, str | os.PathLike | None], inputs: tuple = ()) -> Iterator[None]:
    """All outputs of one command, or none: refuse up front two options naming the same file, an
    output that is an input or a folder; when the block fails, remove every output it wrote.

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
        seen[resolved] = name
    for source in inputs:
        if source is not None and Path(source).resolve() in seen:
            raise ValueError(f"{source}: is both an input and the {seen[Path(source).resolve()]} output; it would be overwritten")
    before = {path: _signature(path) for path in given.values()}
    try:
        yield
    except BaseException:
        for path, signature in before.items():
            if _signature(path) != signature:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        raise


def _signature(path: Path) -> tuple | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def atomic_path(path: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """Like :func:`atomic_write` for writers that want a path (savefig, save_pretrained of a file)."""

    @contextlib.contextmanager
    def _ctx() -> Iterator[Path]:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}.tmp{target.suffix}")
        try:
            yield tmp
            if tmp.exists():
                honour_umask(tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    return _ctx()


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
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
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
