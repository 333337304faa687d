"""Faults injected by hooks (no root, no small file system needed), shared by the fault tests:
a disk that fills at the k-th file a run writes (DiskFull), folders that are read-only or full
(read_only, disk_full), and the checks of a command's one-line error (cli, one_line)."""
from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

import nasflow.runs.checkpoint as checkpoint
import nasflow.runs.durable as durable
from nasflow.cli.main import run as cli_run

class DiskFull:
    """Every atomic write (the way run, checkpoint and model files reach disk) counted; the
    `fail_at`-th one fails as a full disk does: a checkpoint inside safetensors' writer (its
    own error type), any other file as a failed write or fsync does, an OSError naming no file.
    With `appends`, each metrics line appended counts too, and fails with half of it written."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None, appends: bool = False) -> None:
        from nasflow.runs.files import RunFiles

        self.calls, self.fail_at = 0, fail_at
        real_replace, real_save, real_append = durable.replace_durably, checkpoint.save_file, RunFiles.append_metrics

        def replace(tmp: Path, path: Path) -> None:
            self.calls += 1
            if self.calls == self.fail_at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_replace(tmp, path)

        def save(tensors: Any, filename: str, metadata: Any = None) -> None:
            if self.calls + 1 == self.fail_at:
                self.calls += 1
                self.fail_at = -1
                raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                   'message: "No space left on device" })')
            real_save(tensors, filename, metadata=metadata)

        def append(run: Any, record: dict[str, Any]) -> None:
            self.calls += 1
            if self.calls != self.fail_at:
                return real_append(run, record)
            real_path_open = Path.open

            def torn(f: Any) -> Any:  # the file's write puts down half of the line, then fails
                def write(text: str) -> int:
                    f.__class__.write(f, text[: len(text) // 2])
                    f.flush()
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                f.write = write
                return f

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(Path, "open", lambda p, *a, **k: torn(real_path_open(p, *a, **k)))
                real_append(run, record)

        monkeypatch.setattr(durable, "replace_durably", replace)
        monkeypatch.setattr(checkpoint, "save_file", save)
        if appends:
            monkeypatch.setattr(RunFiles, "append_metrics", append)



_WRITE_MODES = set("wax+")


def read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make `folder` (and what is below it) read-only for this process, as a read-only mount
    is: opening for writing, creating a folder, renaming into it or safetensors' writer fail
    with EROFS."""
    refuse_writes(monkeypatch, folder, errno.EROFS)


FULL_DEVICE = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk


def disk_full(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """The disk under `folder` is full for this process, as a real one is: folders and names
    are made, but every write of data fails with ENOSPC naming no file (Python's write, flush
    and close do not), so what a command half-wrote is left for the test to find. Without
    /dev/full: every write into `folder` fails with ENOSPC at its open, naming the file."""
    if not FULL_DEVICE.is_char_device():
        refuse_writes(monkeypatch, folder, errno.ENOSPC)
        return
    inside = _inside(folder)
    real_open, real_os_open, real_save = builtins.open, os.open, checkpoint.save_file

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, bytes, os.PathLike)) and _WRITE_MODES & set(mode) and inside(file):
            real_open(file, mode, *args, **kwargs).close()  # the name is made (or truncated)
            return real_open(FULL_DEVICE, mode.replace("x", "w"), *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    full_fds: set[int] = set()  # fds opened for writing in `folder` (a lock file): their writes fail
    real_write, real_pwrite, real_close = os.write, os.pwrite, os.close

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_os_open(path, flags, *args, **kwargs)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            full_fds.add(fd)
        return fd

    def write(fd: int, data: Any) -> int:
        if fd in full_fds:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    def pwrite(fd: int, data: Any, offset: int) -> int:
        if fd in full_fds:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    def close(fd: int) -> None:
        full_fds.discard(fd)
        real_close(fd)

    real_statvfs = os.statvfs

    def statvfs(path: Any) -> Any:  # no block free (what a check before writing reads)
        r = real_statvfs(path)
        if not isinstance(path, int) and inside(path):
            return os.statvfs_result((r.f_bsize, r.f_frsize, r.f_blocks, 0, 0, r.f_files, r.f_ffree, r.f_favail,
                                      r.f_flag, r.f_namemax))
        return r

    def save(tensors: Any, filename: str, metadata: Any = None) -> None:  # safetensors' own writer
        if inside(filename):
            raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                               'message: "No space left on device" })')
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "close", close)
    monkeypatch.setattr(os, "statvfs", statvfs)
    monkeypatch.setattr(checkpoint, "save_file", save)


def _inside(folder: Path) -> Any:
    folder = folder.resolve()

    def inside(path: Any) -> bool:
        try:
            p = Path(os.fsdecode(path)).resolve()
        except (TypeError, ValueError):
            return False
        return p == folder or folder in p.parents

    return inside


def refuse_writes(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int) -> None:
    """Every way this process writes into `folder` (open for writing, os.open with O_CREAT,
    mkdir, a rename into it, safetensors' writer) fails with errno `code`."""
    inside = _inside(folder)

    def refuse(path: Any) -> OSError:
        return OSError(code, os.strerror(code), os.fsdecode(path))

    real_open, real_mkdir, real_replace, real_save = builtins.open, os.mkdir, os.replace, checkpoint.save_file
    real_os_open = os.open

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:  # the run's lock file
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, bytes, os.PathLike)) and _WRITE_MODES & set(mode) and inside(file):
            raise refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if inside(path):
            raise refuse(path)
        real_mkdir(path, *args, **kwargs)

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if inside(dst):
            raise refuse(dst)
        real_replace(src, dst, *args, **kwargs)

    def save(tensors: Any, filename: str, metadata: Any = None) -> None:
        if inside(filename):
            kind = "ReadOnlyFilesystem" if code == errno.EROFS else "StorageFull"
            raise RuntimeError(f'Error while serializing: IoError(Os {{ code: {code}, kind: {kind}, '
                               f'message: "{os.strerror(code)}" }})')
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(checkpoint, "save_file", save)


def one_line(code: int, err: str, *words: str) -> None:
    """Exit code 2, one line starting 'error:', no traceback, each of `words` in it."""
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
    for w in words:
        assert w in " ".join(err.split()), (w, err)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`nasflow ARGS` in this process: (exit code, stderr)."""
    with pytest.raises(SystemExit) as done:
        cli_run(args)
    return done.value.code, capsys.readouterr().err

