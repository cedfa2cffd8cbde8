"""Every runtime dependency as wheels for one target, and the proof that the set is complete.

Wheels come from ``pip download`` with the target's platform tags: from the package index
(downloads cached in ``~/.cache/kneeoa-kit/pip``, outside the repository), or with ``wheelhouse``
set, only from a local folder of wheels (``--no-index --find-links``), for a workstation that has
no index either. Only wheels: nothing is ever built on the device.

pip evaluates dependency markers on the host, so a Windows set resolved on Linux misses
``colorama`` (click needs it on Windows). :func:`missing_requirements` re-reads every wheel's
``Requires-Dist`` with the target's markers, and :func:`fetch_wheels` downloads what is missing
until the set is closed.
"""

from __future__ import annotations

import email.parser
import importlib.util
import logging
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from .errors import KitError
from .targets import Target

log = logging.getLogger(__name__)
MAX_ROUNDS = 5


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/kneeoa-kit`` (``~/.cache/kneeoa-kit``): downloads survive between builds."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kneeoa-kit"


def isolated_pip_env() -> dict:
    """The environment for a pip that must not read this machine's pip configuration: ``--isolated``
    alone still reads the global files (``/etc/pip.conf``) and ``PIP_*`` extras can leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def pip_download(target: Target, requirements: list[str], dest: Path, wheelhouse: Path | None, cache: Path) -> None:
    """``pip download`` ``requirements`` and their dependencies as wheels for ``target`` into ``dest``.

    Raises:
        KitError: pip could not find a wheel for some requirement; the message has pip's reason.
    """
    source = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    cmd = [sys.executable, "-m", "pip", "download", "--isolated", "--cache-dir", str(cache / "pip"), "-d", str(dest)]
    cmd += [*source, *target.pip_download_flags(), *requirements]
    log.info("%s: pip download %s", target.key, " ".join(requirements))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=isolated_pip_env())
    if proc.returncode != 0:
        reason = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or proc.stderr.splitlines()[
            -1:
        ]
        where = f"the local wheelhouse {wheelhouse}" if wheelhouse else "the package index"
        raise KitError(f"{target.key}: no complete set of wheels from {where}: {' '.join(reason)}")


def wheel_requirements(wheel: Path) -> tuple[str, list[str]]:
    """A wheel's project name (normalised) and its ``Requires-Dist`` lines."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))
    return normalise(meta["Name"]), meta.get_all("Requires-Dist") or []


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_requirements(
    target: Target, folder: Path, roots: list[str], root_extras: tuple[str, ...] = ()
) -> list[str]:
    """Requirements that some wheel in ``folder`` (or ``roots``) needs on ``target`` and that no
    wheel in ``folder`` provides. Markers are evaluated as on the target; a root requirement's
    extras (``kneeoa[tflite]``) are evaluated with ``extra`` set to each of ``root_extras``.
    """
    if importlib.util.find_spec("packaging") is None:
        raise KitError(
            'kneeoa kit build reads wheel requirements with the packaging library: pip install "kneeoa[kit]"'
        )
    from packaging.requirements import Requirement

    have, needed = {}, [(Requirement(r), ("",)) for r in roots]
    for wheel in sorted(folder.glob("*.whl")):
        name, reqs = wheel_requirements(wheel)
        have[name] = wheel
        extras = ("", *root_extras) if name == "kneeoa" else ("",)
        needed += [(Requirement(r), extras) for r in reqs]
    missing = []
    for req, extras in needed:
        applies = req.marker is None or any(req.marker.evaluate(target.marker_environment(x)) for x in extras)
        if applies and normalise(req.name) not in have:
            missing.append(str(req).split(";")[0].strip())
    return sorted(set(missing))


def fetch_wheels(
    target: Target, requirements: list[str], dest: Path, wheelhouse: Path | None, cache: Path
) -> list[Path]:
    """Wheels for ``target`` that satisfy ``requirements`` and all they need there, in ``dest``.

    Raises:
        KitError: no wheel fits a requirement, or the set is still incomplete after a few rounds.
    """
    dest.mkdir(parents=True, exist_ok=True)
    todo = list(requirements)
    for _ in range(MAX_ROUNDS):
        pip_download(target, todo, dest, wheelhouse, cache)
        todo = missing_requirements(target, dest, requirements)
        if not todo:
            return sorted(dest.glob("*.whl"))
        log.info("%s: markers on the target need %s as well", target.key, ", ".join(todo))
    raise KitError(f"{target.key}: wheel set still incomplete after {MAX_ROUNDS} rounds: missing {', '.join(todo)}")


def min_glibc(wheels: list[Path]) -> str | None:
    """The newest glibc that the wheels need: each wheel runs from its lowest tag's glibc
    (``manylinux_2_24.manylinux_2_28`` → 2.24); the set needs the highest of those."""
    need = None
    for wheel in wheels:
        minors = [int(m) for m in re.findall(r"manylinux_2_(\d+)_", wheel.name)]
        minors += [17 for _ in re.findall(r"manylinux2014_", wheel.name)]
        if minors and (need is None or min(minors) > need):
            need = min(minors)
    return f"2.{need}" if need is not None else None
