"""An emulated Raspberry Pi (Debian arm64, Cortex-A72) on an x86_64 machine, to install and run a
linux-aarch64 kit where no Pi is at hand. Emulated timings say nothing about a real Pi; what it
shows is that the kit installs offline and gives the same answers.

No binfmt_misc is needed: ``proot -q qemu-aarch64-static`` runs every program of the root through
qemu. The root comes from ``debootstrap --foreign`` (downloading and unpacking, nothing emulated),
then every downloaded package is unpacked with ``dpkg-deb -x``; that skips debootstrap's second
stage (about 12 minutes emulated; no maintainer scripts run), and Python with ``venv`` works
without them. The root is kept in the cache folder and reused.

Traps handled here (see TOOLCHAIN.md): qemu's default CPU corrupts LiteRT output, so the CPU is
``cortex-a72``; onnxruntime and LiteRT segfault without a Pi-like ``/proc/cpuinfo``; proot exits 0
when a guest process crashes, so callers must check the output, not only the exit status.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import KitError

TOOLS = ("qemu-aarch64-static", "proot", "debootstrap", "dpkg-deb")
APT_PACKAGES = "qemu-user-static proot debootstrap"
SUITE = "bookworm"
CPU = "cortex-a72"  # Raspberry Pi 4
GUEST_PATH = "/usr/bin:/bin"


def _tool(name: str) -> str | None:
    """A tool's path: on ``PATH``, or in ``/usr/sbin`` where Debian puts debootstrap."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def missing_tools() -> list[str]:
    """The tools an emulated Pi needs that are not installed (Debian: ``apt-get install qemu-user-static proot debootstrap``)."""
    return [t for t in TOOLS if _tool(t) is None]


def debian_mirror() -> str:
    """The first Debian archive this machine's apt sources name (not the security archive)."""
    texts = [p.read_text() for p in Path("/etc/apt").glob("sources.list*/**/*") if p.is_file()]
    if Path("/etc/apt/sources.list").is_file():
        texts.append(Path("/etc/apt/sources.list").read_text())
    for url in re.findall(r"(?:URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", "\n".join(texts), re.M):
        if "security" not in url and url.rstrip("/").endswith("/debian"):
            return url
    return "http://deb.debian.org/debian"


def pi_root(cache: Path, log=lambda message: None) -> Path:
    """A Debian arm64 root with python3 and python3-venv under ``cache``; built once, then reused.

    Raises:
        KitError: a tool is missing or debootstrap fails.
    """
    root = cache / f"pi-root-{SUITE}-arm64"
    if (root / "usr" / "bin" / "python3").exists() and (root / ".kneeoa-complete").exists():
        return root
    if missing_tools():
        raise KitError(f"an emulated Pi needs {', '.join(missing_tools())}: apt-get install {APT_PACKAGES}")
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pi-root-", dir=cache))
    cmd = [_tool("debootstrap"), "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3,python3-venv",
           SUITE, str(work), debian_mirror()]  # fmt: skip
    log(f"debootstrap (first stage only) into {work}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise KitError(f"debootstrap failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    debs = sorted((work / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    log(f"unpacking {len(debs)} packages with dpkg-deb -x")
    for deb in debs:
        subprocess.run([_tool("dpkg-deb"), "-x", str(deb), str(work)], check=True)
    (work / ".kneeoa-complete").write_text(f"{SUITE} arm64, {len(debs)} packages unpacked\n")
    shutil.rmtree(root, ignore_errors=True)
    work.rename(root)
    return root


def pi_cpuinfo(path: Path) -> Path:
    """A Raspberry Pi 4 ``/proc/cpuinfo`` (Cortex-A72), one block per host CPU."""
    block = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
             "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n")  # fmt: skip
    path.write_text("".join(block.format(i=i) for i in range(os.cpu_count() or 1)))
    return path


def run_on_pi(
    root: Path, argv: list[str], binds: dict, env: dict | None = None, network: bool = False, timeout: float = 1800
) -> subprocess.CompletedProcess:
    """Run ``argv`` in the emulated Pi with host paths bound in (``{host: guest}``), a clean
    environment, and, unless ``network``, no network at all (``unshare -n``).

    Returns the completed process; a guest crash can still exit 0, so check what it printed.
    """
    cpuinfo = pi_cpuinfo(root.parent / f"{root.name}.cpuinfo")
    cmd = ["proot", "-q", f"qemu-aarch64-static -cpu {CPU}", "-r", str(root), "-b", "/dev", "-b", "/proc", "-b", "/sys",
           "-b", f"{cpuinfo}:/proc/cpuinfo", *(a for h, g in binds.items() for a in ("-b", f"{h}:{g}")), "-w", "/"]  # fmt: skip
    guest_env = {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
    cmd += ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in guest_env.items()), *argv]
    if not network:
        cmd = ["unshare", "-n", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
