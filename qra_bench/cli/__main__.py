"""``python -m qra_bench.cli``: the ``qra-bench`` command."""

from qra_bench.cli.app import main

if __name__ == "__main__":
    main()
