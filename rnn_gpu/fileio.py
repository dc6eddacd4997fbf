"""Files on disk: writing them so that an interruption or a full disk never
leaves one half-written, with the modes the user's umask gives; the run
directory's lock; and the cache directories (prepared corpora, the kernel
autotuner's choices). A failure of the machine (no space, no permission)
becomes an `EnvironmentFailure` that names the file; a file where a directory
should be, or a name too long for any file system, a `UsageError`. Imports
nothing of the package but its errors."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path

from .errors import EnvironmentFailure, UsageError


def umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def describe_os_error(exc: OSError, doing: str, path) -> str:
    """'writing X failed: No space left on device', and the like."""
    return f"{doing} {path} failed: {exc.strerror or exc}"


def os_failure(exc: OSError, doing: str, path) -> EnvironmentFailure | UsageError:
    """The error to raise for `exc`: the machine's failure, except for a
    name too long for any file system, which is the user's."""
    kind = UsageError if exc.errno == errno.ENAMETOOLONG else EnvironmentFailure
    return kind(describe_os_error(exc, doing, path))


def atomic_write(path: Path, write) -> None:
    """Calls write(file) on a temporary file beside `path`, then renames it
    over `path`: an interruption or a full disk leaves the old file whole.
    The new file gets the mode a plain `open` would (0666 less the umask)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise os_failure(exc, "writing", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise os_failure(exc, "writing", path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_directory(path: Path) -> bool:
    """mkdir -p; True if this made it. A file in the way is a UsageError; no
    permission or no space an EnvironmentFailure."""
    path = Path(path)
    existed = path.is_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise UsageError(f"cannot make directory {path}: {blocking} is a file") from None
    except OSError as exc:
        raise os_failure(exc, "creating", path) from None
    return not existed


def remove_file(path: Path) -> None:
    """rm -f; a failure of the machine as an EnvironmentFailure."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError as exc:
        raise os_failure(exc, "removing", path) from None


def open_for_append(path: Path, append: bool):
    """A text file for a log, opened now; failures as EnvironmentFailure."""
    try:
        return open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 (the caller keeps it open)
    except OSError as exc:
        raise os_failure(exc, "writing", path) from None


def check_writable(directory: Path) -> None:
    """Tries a file in `directory` (made and removed at once): permission bits
    alone do not tell, for root or on a read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise os_failure(exc, "writing in", directory) from None


def lock_directory(directory: Path) -> int | None:
    """An exclusive lock on `directory` itself (no lock file), held while
    the returned descriptor is open: a second run into the same directory is
    a UsageError instead of two runs writing one checkpoint. A file system
    without locks (some network mounts) runs unlocked: None."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise os_failure(exc, "opening", directory) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(f"{directory} is in use by another run; wait for it or choose another out=") from None
    except OSError:
        os.close(fd)
        return None
    return fd


def is_regular(path: Path) -> bool:
    """A regular file (after links): what the program reads of its own. A
    FIFO would block the open, a device never end."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # missing, no permission, a name no file system holds
        return False


def read_regular(path: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of `path` if it is a regular file of at most `max_bytes`;
    OSError otherwise (missing, no permission, not a regular file, too
    large). Opening never blocks: a FIFO is opened without waiting for a writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if max_bytes is not None and info.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        os.set_blocking(fd, True)
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # it grew since fstat
        raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
    return data


def cache_dirs(spare: Path | None = None) -> list[Path]:
    """Where the program keeps what it can make again (prepared forms of raw
    corpora, kernel choices), in order: $RNN_GPU_CACHE if set (then only it),
    else $XDG_CACHE_HOME/rnn_gpu, ~/.cache/rnn_gpu, then `spare` (a cache
    beside the run directory)."""
    if os.environ.get("RNN_GPU_CACHE"):
        return [Path(os.environ["RNN_GPU_CACHE"])]
    dirs = []
    if os.environ.get("XDG_CACHE_HOME"):
        dirs.append(Path(os.environ["XDG_CACHE_HOME"]) / "rnn_gpu")
    with contextlib.suppress(RuntimeError, KeyError):  # no $HOME and no passwd entry
        dirs.append(Path.home() / ".cache" / "rnn_gpu")
    if spare is not None:
        dirs.append(Path(spare))
    return dirs


def cache_dir() -> Path:
    """The first cache directory (see cache_dirs)."""
    return cache_dirs()[0]


def writable_dir(path: Path) -> bool:
    """The directory exists or was made, and a file can be written in it."""
    try:
        make_directory(path)
        check_writable(path)
    except (EnvironmentFailure, UsageError):  # no permission, no space, a file in the way
        return False
    return True
