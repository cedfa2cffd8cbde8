"""Print the shell command of the README's fenced ``bash`` block that follows a bold heading.

Used by ``.ci/run`` so that CI runs the README's two commands exactly as written:
``python3 .ci/readme_command.py "Screen a knee"``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def command(readme: str, heading: str) -> str:
    start = readme.index(f"**{heading}**")
    block = re.search(r"```bash\n(.*?)```", readme[start:], re.S)
    if block is None:
        raise SystemExit(f"README.md: no ```bash block after **{heading}**")
    return block.group(1).strip()


if __name__ == "__main__":
    print(command(Path(__file__).resolve().parent.parent.joinpath("README.md").read_text(), sys.argv[1]))
