"""``python -m experiments.benchmark``: see the package docstring."""

from experiments.benchmark._cli import main

if __name__ == "__main__":
    main()
