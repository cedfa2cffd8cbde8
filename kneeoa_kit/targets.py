"""The platforms a kit can carry wheels for: one registry, looked up by name.

A :class:`Target` is a platform and a Python version (``linux-aarch64`` with 3.11). It knows the
flags that make ``pip download`` resolve wheels for it from another machine, and the environment
that dependency markers (``; sys_platform == "win32"``) are evaluated against, because pip
evaluates them on the host.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from .errors import KitError

GLIBC_MINORS = range(17, 37)
"""``manylinux_2_17`` … ``manylinux_2_36``: with ``manylinux2014`` alone pip settles for old
onnxruntime releases and finds no ai-edge-litert at all (it is ``manylinux_2_27`` only)."""


@dataclass(frozen=True)
class Platform:
    """One operating system and CPU a kit can install on.

    Attributes:
        name: Registry key, as ``verify.py`` names the machine it runs on (``linux-aarch64``).
        pip_platforms: ``--platform`` values for ``pip download``, most specific first.
        markers: Values of the platform's environment markers (PEP 508).
        shell: The scripts that install and run on it: ``sh`` or ``ps1``.
        note: Who uses it, for people reading ``kit.json``.
    """

    name: str
    pip_platforms: tuple[str, ...]
    markers: dict
    shell: str
    note: str


def _manylinux(arch: str) -> tuple[str, ...]:
    return tuple(f"manylinux_2_{minor}_{arch}" for minor in reversed(GLIBC_MINORS)) + (f"manylinux2014_{arch}",)


def _linux(arch: str) -> dict:
    return {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": arch, "os_name": "posix"}


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform("linux-aarch64", _manylinux("aarch64"), _linux("aarch64"), "sh", "Raspberry Pi 4/5 (64-bit OS)"),
        Platform("linux-x86_64", _manylinux("x86_64"), _linux("x86_64"), "sh", "Linux PC"),
        Platform(
            "win-amd64",
            ("win_amd64",),
            {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"},
            "ps1",
            "Windows PC (64-bit)",
        ),
    )
}


@dataclass(frozen=True)
class Target:
    """A platform and a CPython ``major.minor`` version to carry wheels for."""

    platform: Platform
    python: str

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def key(self) -> str:
        """``linux-aarch64-cp311``: a folder name for this target's downloads."""
        return f"{self.platform.name}-{self.abi}"

    def pip_download_flags(self) -> list[str]:
        """The flags that make ``pip download`` choose wheels for this target."""
        flags = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp", "--abi", self.abi]
        for tag in self.platform.pip_platforms:
            flags += ["--platform", tag]
        return flags

    def marker_environment(self, extra: str = "") -> dict:
        """Environment markers as they read on this target (PEP 508 names)."""
        return self.platform.markers | {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "extra": extra,
        }


def parse_targets(platforms: str, pythons: str | None) -> tuple[Target, ...]:
    """Targets from ``--platform a,b`` and ``--python 3.11,3.13`` (every pair).

    Args:
        platforms: Comma-separated platform names, or ``host`` for this machine's.
        pythons: Comma-separated ``major.minor`` versions; ``None`` for this interpreter's.

    Raises:
        KitError: an unknown platform or a malformed Python version.
    """
    from .verify import this_platform

    names = [this_platform() if p.strip() == "host" else p.strip() for p in platforms.split(",") if p.strip()]
    unknown = [n for n in names if n not in PLATFORMS]
    if unknown or not names:
        raise KitError(f"unknown platform(s) {unknown}; choose from {', '.join(PLATFORMS)} or 'host'")
    versions = (
        [v.strip() for v in pythons.split(",") if v.strip()]
        if pythons
        else [f"{sys.version_info[0]}.{sys.version_info[1]}"]
    )
    bad = [v for v in versions if not re.fullmatch(r"3\.\d{1,2}", v)]
    if bad or not versions:
        raise KitError(f"Python version(s) {bad} not understood; write them as 3.11,3.13")
    return tuple(Target(PLATFORMS[n], v) for n in dict.fromkeys(names) for v in dict.fromkeys(versions))
