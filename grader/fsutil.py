"""Writing outputs so a reader never sees half a file, even after Ctrl-C."""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat
import tempfile
import unicodedata
from pathlib import Path

NAME_BYTES = 120  # longest output name stem: room for suffixes and temporary names within 255 bytes


class UnsafeFile(Exception):
    """A file refused unread: a link, a FIFO or device, or over its size limit. The message
    completes "the file is ..."."""


class FileTooLarge(UnsafeFile):
    """A plain file over its size limit."""


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """A plain file's bytes, never following a link (which could lead to the reference
    solution or a grader's file) nor blocking on a FIFO, nor reading past `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile("a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile("not a plain file")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLarge(f"{max(info.st_size, len(data)):,} bytes, over the limit of {max_bytes:,}")
    return data


def readable_name(name: str) -> str:
    """A file name as its author wrote it: undecodable bytes (a zip made on Korean Windows
    stores CP949) are decoded as CP949 where that works, else shown as escapes."""
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:  # not from the file system: lone surrogates of its own
        return name.encode("utf-8", errors="replace").decode("utf-8")
    for encoding in ("utf-8", "cp949"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="backslashreplace")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomic(path: Path, text: str) -> None:
    """`text` as UTF-8; a lone surrogate that slipped through is written as an escape, not raised."""
    write_bytes_atomic(path, text.encode("utf-8", errors="backslashreplace"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name is short whatever the target's: a name near 255 bytes plus a suffix won't fit.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{_short_hash(path.name)}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_dir_atomic(build: Path, target: Path) -> None:
    """Move a fully written folder into place, replacing any older one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(build, target)
    if old is not None:
        remove_tree(old)


def _short_hash(text: str) -> str:
    return hashlib.sha256(os.fsencode(text)).hexdigest()[:12]


def safe_name(text: str) -> str:
    """`text` as one harmless path component: no separators, control characters, leading
    dots or undecodable bytes, at most NAME_BYTES bytes of UTF-8 (then a hash of the rest)."""
    cleaned = "".join("_" if ch in "/\\\0" or unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)
    cleaned = cleaned.strip().lstrip(".") or "_"
    encoded = cleaned.encode("utf-8")
    if len(encoded) <= NAME_BYTES:
        return cleaned
    head = encoded[:NAME_BYTES - 13].decode("utf-8", errors="ignore")
    return f"{head}~{_short_hash(text)}"


def remove_tree(path: Path) -> None:
    """Delete a folder whatever a kernel built in it, and never raise.

    `shutil.rmtree` recurses (a 3000-level tree raises RecursionError) and uses full paths
    (over PATH_MAX). Here each subfolder's children are moved up into the top folder before
    it is removed, so the work is flat: two open folders at a time, no path longer than a name.
    """
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        Path(path).unlink(missing_ok=True)
        return
    except OSError:
        return
    fresh = (f".hoisted-{n}" for n in itertools.count())
    try:
        while True:
            with os.scandir(top) as entries:
                names = [entry.name for entry in entries]
            if not names:
                break
            for name in names:
                _remove_entry(top, name, fresh)
    except OSError:
        pass
    finally:
        os.close(top)
    try:
        os.rmdir(path)
    except OSError:
        pass


def _remove_entry(top: int, name: str, fresh) -> None:
    """Unlink a file of `top`, or move a subfolder's children into `top` and remove it."""
    if not stat.S_ISDIR(os.lstat(name, dir_fd=top).st_mode):
        os.unlink(name, dir_fd=top)
        return
    os.chmod(name, 0o700, dir_fd=top, follow_symlinks=False)  # a kernel may have made it unreadable
    folder = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
    try:
        with os.scandir(folder) as entries:
            children = [entry.name for entry in entries]
        for child in children:
            unused = next(n for n in fresh if not _exists(top, n))
            os.rename(child, unused, src_dir_fd=folder, dst_dir_fd=top)
    finally:
        os.close(folder)
    os.rmdir(name, dir_fd=top)


def _exists(folder: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=folder)
    except FileNotFoundError:
        return False
    return True


def hash_files(files: dict[str, Path], extra: list[str]) -> str:
    """A short content hash of labelled files plus extra strings (versions, device)."""
    digest = hashlib.sha256()
    for text in extra:
        digest.update(text.encode() + b"\0")
    for label in sorted(files):
        digest.update(label.encode() + b"\0" + files[label].read_bytes() + b"\0")
    return digest.hexdigest()[:20]
