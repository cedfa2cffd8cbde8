"""``python -m edge_infer``: the same as ``edge-infer``."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="edge-infer")
