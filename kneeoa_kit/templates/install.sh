#!/bin/sh
# Install this kneeoa screening kit with no network: check the kit, make a virtual environment,
# install only the wheels in this kit for this machine, then check the installed files.
#   sh install.sh            (set PYTHON=python3.11 to choose the Python, KNEEOA_HOME for where)
set -u
KIT=$(cd "$(dirname "$0")" && pwd)
HOME_DIR=${KNEEOA_HOME:-"$HOME/kneeoa"}
VENV="$HOME_DIR/venv"
PY=${PYTHON:-python3}

if ! command -v "$PY" >/dev/null 2>&1; then
    echo "install.sh: no '$PY' on this machine. Install Python @@PYTHONS@@ from the system's packages" >&2
    echo "  (Raspberry Pi OS / Debian / Ubuntu: sudo apt install python3 python3-venv), then run this again." >&2
    exit 1
fi
echo "1/4 checking the kit and this machine"
"$PY" "$KIT/verify.py" --this-machine "$KIT" || {
    echo "install.sh: stopped: the kit is damaged or has no wheels for this machine (see the FAILED line above)." >&2
    exit 1
}
echo "2/4 creating the virtual environment $VENV"
mkdir -p "$HOME_DIR"
"$PY" -m venv "$VENV" || {
    echo "install.sh: '$PY -m venv' failed. On Debian, Ubuntu or Raspberry Pi OS: sudo apt install python3-venv" >&2
    exit 1
}
echo "3/4 installing from the kit's wheels only (no network)"
PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --isolated \
    --no-index --find-links "$KIT/wheels" --only-binary=:all: --no-cache-dir "@@REQUIREMENT@@" || {
    echo "install.sh: pip found no wheel in $KIT/wheels for a package named above." >&2
    echo "  Ask for a kit built for this machine: 'python3 verify.py --this-machine' names its platform and Python." >&2
    exit 1
}
echo "4/4 checking the installed files"
"$PY" "$KIT/verify.py" --installed "$VENV" "$KIT" || exit 1
echo "installed: $VENV"
echo "screen a folder of knee X-rays with:  sh $KIT/screen.sh FOLDER"
