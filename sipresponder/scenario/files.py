"""Which files a scenario may read (``body_file``), and reading one safely.

A scenario from the operator (``--scenario FILE``, ``--watch``, SIGHUP, the Python
API) may name any file, relative to its folder: that is the operator's choice. A
scenario pushed over the admin API (PUT scenario, PUT rule, the console's check) is
untrusted text: it may name only files under the folder of the scenario file the
server was started with, and none when it was started without one (the bundled
scenarios). Either way a file must be a regular one of at most
``settings.max_body_file`` octets, so that no device, FIFO or pseudo-file
(``/dev/zero``, a FIFO nobody writes, ``/proc/self/environ``) is ever read.

The file is opened without blocking and without following a symlink in its last
component, and the opened descriptor is checked (fstat), never the path, so a file
swapped between the check and the read is caught. Errors never say whether a path
outside the allowed folder exists: "outside" is said from the path alone.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .fields import FieldError

# Pseudo-filesystems whose "regular" files are views of the process or the kernel
# (/proc/self/environ holds the admin token; their sizes read 0): no scenario reads them.
_PSEUDO = (Path("/proc"), Path("/sys"))
_OPEN_FLAGS = (os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
               | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0))
_DIR_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0)


@dataclass(frozen=True, slots=True)
class FileAccess:
    """Where a scenario's ``body_file`` names are read from and what it may read.

    ``base``: the folder relative names start from. ``confined``: the names must stay
    under ``base`` (resolved, symlinks included); a confined access with no ``base``
    allows no file at all. ``limit``: the largest file, in octets (the loader sets it
    from ``settings.max_body_file``).
    """

    base: Path | None
    confined: bool
    limit: int = 1 << 20

    @classmethod
    def anywhere(cls, base: Path | None = None) -> FileAccess:
        """The operator's scenario: any regular file, relative names from ``base``."""
        return cls(base or Path("."), confined=False)

    @classmethod
    def within(cls, base: Path | None) -> FileAccess:
        """A pushed scenario: only files under ``base``; none when ``base`` is None."""
        return cls(base, confined=True)

    def with_limit(self, limit: int) -> FileAccess:
        return FileAccess(self.base, self.confined, limit)

    def path(self, name: str) -> Path:
        """Where ``name`` points, as the loader names it (``Scenario.body_files``)."""
        file = Path(name)
        return file if file.is_absolute() or self.base is None else self.base / file

    def read(self, field: str, name: str) -> bytes:
        """The file's octets; FieldError(field) when it may not or cannot be read."""
        if self.confined and self.base is None:
            raise FieldError(field, "files cannot be named in a scenario sent over the admin "
                             "API when the server was started without a scenario file")
        root = Path(os.path.realpath(self.base)) if self.confined and self.base else None
        # First from the name alone, before anything outside is looked at, so that no
        # answer depends on what exists there (a "../x/.." resolves differently when x
        # is a symlink); then resolved, for symlinks inside that lead out.
        if root is not None and not _stays_within(Path(name), self.base or root, root):
            raise FieldError(field, _outside(name))
        file = Path(os.path.realpath(self.path(name)))
        if root is not None and not file.is_relative_to(root):
            raise FieldError(field, _outside(name))
        if any(file.is_relative_to(p) for p in _PSEUDO):
            raise FieldError(field, f"{name!r} is not a regular file")
        return _read_regular(field, name, file, self.limit)


def _outside(name: str) -> str:
    return (f"{name!r} is outside the scenario's folder "
            "(a scenario sent over the admin API may only name files there)")


def _stays_within(name: Path, base: Path, root: Path) -> bool:
    """Whether ``name``, read as written, never leaves ``base`` (``..`` included)."""
    parts = name.parts
    if name.is_absolute():
        for folder in (Path(os.path.abspath(base)), root):
            if name.is_relative_to(folder):
                parts = name.relative_to(folder).parts
                break
        else:
            return False
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part != ".":
            depth += 1
    return True


def _read_regular(field: str, name: str, file: Path, limit: int) -> bytes:
    """Read ``file`` (already resolved: no symlink in it) if it is a regular file of at
    most ``limit`` octets. Each folder is opened below the last with O_NOFOLLOW, so a
    folder replaced by a symlink after the path was resolved is refused, not followed."""
    try:
        fd = _open_resolved(file)
    except OSError as exc:
        raise FieldError(field, f"cannot read {name!r}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FieldError(field, f"{name!r} is not a regular file")
        if info.st_size > limit:
            raise FieldError(field, _too_large(name, limit))
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        left = limit + 1  # one octet more tells a file that grew past the limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise FieldError(field, f"cannot read {name!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise FieldError(field, _too_large(name, limit))
    return data


def _too_large(name: str, limit: int) -> str:
    return f"{name!r} is larger than max_body_file ({limit} octets)"


def _open_resolved(file: Path) -> int:
    parts = file.parts
    fd = os.open(parts[0], _DIR_FLAGS)
    try:
        for part in parts[1:-1]:
            below = os.open(part, _DIR_FLAGS | getattr(os, "O_NOFOLLOW", 0), dir_fd=fd)
            os.close(fd)
            fd = below
        return os.open(parts[-1], _OPEN_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
