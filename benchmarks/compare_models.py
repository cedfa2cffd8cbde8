"""Two models side by side from their `kneeoa bench --json` files, run one after the other on the
same machine: per format and thread count, each model's per-knee batch time and the ratio.

    python benchmarks/compare_models.py OLD.json NEW.json

The ratio that matters for a model's latency budget is ``e2e`` (a batch as `edge-infer` runs
it, per knee); the raw invoke is shown too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _rows(path: Path) -> tuple[dict, dict]:
    data = json.loads(path.read_text())
    return data, {(r["format"], r["threads"]): r for r in data["rows"]}


def compare(old_path: Path, new_path: Path) -> str:
    old, old_rows = _rows(old_path)
    new, new_rows = _rows(new_path)
    lines = [
        f"| format | threads | {old['model']} raw ms | {new['model']} raw ms | raw ratio | "
        f"{old['model']} e2e ms | {new['model']} e2e ms | e2e ratio | e2e / raw (new) | gate cost % (new) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(set(old_rows) & set(new_rows)):
        o, n = old_rows[key], new_rows[key]
        o_raw, n_raw = o["latency"]["median_ms"], n["latency"]["median_ms"]
        o_e2e, n_e2e = o["end_to_end"]["median_ms"], n["end_to_end"]["median_ms"]
        lines.append(
            f"| `{key[0]}` | {key[1]} | {o_raw:.2f} | {n_raw:.2f} | {n_raw / o_raw:.2f} | "
            f"{o_e2e:.2f} | {n_e2e:.2f} | {n_e2e / o_e2e:.2f} | {n['end_to_end']['ratio_to_raw']:.2f} | "
            f"{100 * n['gate_cost']:.1f} |"
        )
    only_new = sorted(set(new_rows) - set(old_rows))
    for key in only_new:
        n = new_rows[key]
        lines.append(
            f"| `{key[0]}` (new only) | {key[1]} | – | {n['latency']['median_ms']:.2f} | – | – | "
            f"{n['end_to_end']['median_ms']:.2f} | – | {n['end_to_end']['ratio_to_raw']:.2f} | {100 * n['gate_cost']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    print(compare(args.old, args.new), end="")


if __name__ == "__main__":
    main()
