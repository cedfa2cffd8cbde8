"""Starting the page: ``kneeoa app`` runs ``streamlit run`` on :mod:`kneeoa_app.app_script` with
the app's own Streamlit configuration, given as command-line flags so that no ``config.toml`` in
the working directory or the home folder can switch telemetry back on or open the server wider."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from edge_infer.errors import KneeOAError

APP_EXTRA = 'pip install "kneeoa[app]"'
MODEL_ENV = "KNEEOA_APP_MODEL"
"""How the launcher tells the page which model directory to open first."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
MAX_UPLOAD_MB = 64
"""Largest file accepted: a knee CR/DR DICOM is a few to 30 MB."""
SCRIPT = Path(__file__).resolve().with_name("app_script.py")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")

STREAMLIT_OPTIONS: dict[str, str] = {
    "browser.gatherUsageStats": "false",  # no usage statistics sent anywhere
    "server.headless": "true",  # no browser opened on the server, no e-mail prompt
    "server.maxUploadSize": str(MAX_UPLOAD_MB),
    "server.fileWatcherType": "none",  # a device serves a fixed page
    "server.runOnSave": "false",
    "global.developmentMode": "false",
    "client.toolbarMode": "viewer",  # no deploy button or developer menu (links to the internet)
    "client.showErrorDetails": "none",  # a bug shows a message in the page; the traceback goes to the terminal
    "theme.base": "light",
}
"""The app's Streamlit configuration; fonts and scripts come from Streamlit's own package (checked
in a real browser by tests/test_app_browser.py)."""


class AppSetupError(KneeOAError):
    """The page cannot be started as asked (Streamlit missing, a bad address)."""


def streamlit_command(model_dir: Path | None, port: int, host: str) -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` command line and the environment that serve the page.

    Args:
        model_dir: Model directory the page opens first (``None``: the shipped model).
        port: TCP port.
        host: Address to bind; ``127.0.0.1`` keeps the page on this machine.

    Returns:
        ``(argv, env)`` for :func:`subprocess.run`.
    """
    options = dict(STREAMLIT_OPTIONS)
    options["server.address"] = host
    options["server.port"] = str(port)
    # Set explicitly, so Streamlit never looks up this machine's external address on the internet
    # to print a URL (it does when the address is left unset or is a wildcard).
    options["browser.serverAddress"] = "localhost" if host in WILDCARD_HOSTS else host
    options["browser.serverPort"] = str(port)
    argv = [sys.executable, "-m", "streamlit", "run", str(SCRIPT)]
    argv += [f"--{key}={value}" for key, value in options.items()]
    env = dict(os.environ)
    env.pop(MODEL_ENV, None)
    if model_dir is not None:
        env[MODEL_ENV] = str(Path(model_dir).resolve())
    env["ORT_DISABLE_TELEMETRY"] = "1"  # edge_infer forces it too; here before anything starts
    return argv, env


def serve(model_dir: Path | None = None, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> int:
    """Serve the page until interrupted (Ctrl-C or SIGTERM).

    On Linux and macOS the Streamlit server replaces this process (``exec``), so every signal
    reaches the server itself and no server is ever left running without its parent; elsewhere it
    runs as a child and this returns its exit status.

    Raises:
        AppSetupError: Streamlit is not installed (names the extra).
    """
    require_streamlit()
    argv, env = streamlit_command(model_dir, port, host)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(argv[0], argv, env)
    server = subprocess.Popen(argv, env=env)
    try:
        return server.wait()
    except KeyboardInterrupt:  # the console sent the server the same Ctrl-C: let it shut down cleanly
        try:
            return server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.terminate()
            return server.wait()


def require_streamlit() -> None:
    """Fail with one line naming the extra when Streamlit is missing.

    Raises:
        AppSetupError: Streamlit is not installed.
    """
    if importlib.util.find_spec("streamlit") is None:
        raise AppSetupError(f"kneeoa app needs Streamlit: {APP_EXTRA}")
