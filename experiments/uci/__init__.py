"""UCI regression on the standard 20 splits: every approximator against the published numbers.

Run (CPU subset, 3 splits per data set)::

    python -m experiments.uci --quick --out results/uci
    python -m experiments.uci --full --out results/uci-full          # 20 splits (GPU host)
    python -m experiments.uci --full --out DIR --shard 3/8            # job 3 of an 8-job array
    python -m experiments.uci --out DIR --report-only                 # report of what is there

Each (data set, split, method) record is written the moment it exists; rerunning the same
command skips everything already in ``--out``.
"""

from experiments.uci._run import main, parse_args

__all__ = ["main", "parse_args"]
