"""Small file helpers shared by every stage: atomic writes, fetching a URL or path, TSV lists.

Foundation module: no project imports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Iterator

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
