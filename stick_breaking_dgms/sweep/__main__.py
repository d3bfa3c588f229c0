"""``python -m stick_breaking_dgms.sweep GRID.toml``: see :mod:`.cli`."""
from .cli import console

if __name__ == "__main__":
    console()
