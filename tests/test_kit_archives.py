"""Archives that a kit's verify.py must refuse to unpack: path traversal, absolute paths, drive
letters, backslashes, links, special files, and members over the size limit."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from kneeoa_kit.verify import KitProblem, extract

VERIFY_PY = Path(__file__).resolve().parent.parent / "kneeoa_kit" / "verify.py"


def run_verify_py(*args) -> subprocess.CompletedProcess:
    """verify.py under a bare interpreter (-I -S: no environment, no site-packages)."""
    return subprocess.run([sys.executable, "-I", "-S", *map(str, args)], capture_output=True, text=True, timeout=60)


def _zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w") as tf:
        for m in members:
            tf.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
    return path


def _tarinfo(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: _zip(p / "a.zip", [("kit/ok.txt", b"x", 0o100644), ("kit/../../escaped.txt", b"x", 0o100644)]),
            r"'\.\.' in an archive path",
        ),
        (lambda p: _zip(p / "a.zip", [("/tmp/escaped.txt", b"x", 0o100644)]), "absolute path"),
        (lambda p: _zip(p / "a.zip", [("C:/escaped.txt", b"x", 0o100644)]), "absolute path"),
        (lambda p: _zip(p / "a.zip", [("kit\\..\\escaped.txt", b"x", 0o100644)]), "backslash"),
        (lambda p: _zip(p / "a.zip", [("kit/link", b"/etc/passwd", 0o120777)]), "a symlink in the archive"),
        (lambda p: _zip(p / "a.zip", [("kit/big.bin", b"\0" * 5000, 0o100644)]), "over the 4096-byte limit"),
        (lambda p: _tar(p / "a.tar", [_tarinfo("kit/../escaped.txt")]), r"'\.\.' in an archive path"),
        (
            lambda p: _tar(p / "a.tar", [_tarinfo("kit/link", tarfile.SYMTYPE, link="../../etc")]),
            "a symlink in the archive",
        ),
        (
            lambda p: _tar(p / "a.tar", [_tarinfo("kit/hard", tarfile.LNKTYPE, link="/etc/passwd")]),
            "a hard link in the archive",
        ),
        (lambda p: _tar(p / "a.tar", [_tarinfo("kit/fifo", tarfile.FIFOTYPE)]), "a special file in the archive"),
    ],
    ids=[
        "zip-dotdot",
        "zip-absolute",
        "zip-drive",
        "zip-backslash",
        "zip-symlink",
        "zip-oversized",
        "tar-dotdot",
        "tar-symlink",
        "tar-hardlink",
        "tar-fifo",
    ],
)
def test_unsafe_archives_are_refused_and_write_nothing_outside(tmp_path, make, message):
    archive = make(tmp_path)
    with pytest.raises(KitProblem, match=message):
        extract(archive, tmp_path / "out" / "dest", max_member=4096)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "escaped.txt").exists()
    proc = run_verify_py(VERIFY_PY, archive, "--extract", tmp_path / "out2")
    assert proc.returncode == 1 and proc.stderr.startswith("FAILED: ")


def test_a_member_larger_than_its_header_says_is_stopped_at_the_limit(tmp_path):
    """The size limit holds on the bytes written, not only on what the archive declares."""
    archive = _zip(tmp_path / "a.zip", [("kit/big.bin", b"\0" * 10_000, 0o100644)])
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("kit/big.bin")
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")  # the central directory's uncompressed size
    archive.write_bytes(bytes(data))
    assert info.file_size == 10_000
    with pytest.raises((KitProblem, zipfile.BadZipFile), match=r"size limit|Bad CRC|Truncated|uncompressed size"):
        extract(archive, tmp_path / "dest", max_member=4096)
    written = tmp_path / "dest" / "kit" / "big.bin"
    assert not written.exists() or written.stat().st_size <= 4096 + (1 << 20)


def test_extract_refuses_a_folder_that_is_not_empty(tmp_path):
    archive = _zip(tmp_path / "a.zip", [("kit/ok.txt", b"x", 0o100644)])
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "old").write_text("x")
    with pytest.raises(KitProblem, match="not empty; unpack into a new folder"):
        extract(archive, tmp_path / "dest")
