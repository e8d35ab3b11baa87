"""Step-0 success of each method vs the frozen base on the same evaluation states (no initial drop).

Uses data/<p>/demos/<task>, data/<p>/base/<task> and results/<p>/base/<task>.csv of the default profile <p> (run
`dvc repro base` first) and the profile's finetune settings; BC steps can be overridden.

    python scripts/check_initial_drop.py --tasks square pick_place \
        --methods csil_residual csil_ensemble csil_ensemble_mean --bc-steps 500 3000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from cohirl import _runtime
from cohirl.stages import results_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["square", "pick_place"])
    p.add_argument("--methods", nargs="+", default=["csil_residual", "csil_ensemble", "csil_ensemble_mean"])
    p.add_argument("--bc-steps", nargs="+", type=int, default=[None])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="CSV to write the rows to")
    args = p.parse_args()
    _runtime.set_offline_env()
    _runtime.configure_torch(1)
    from cohirl.initial_drop import STEP0_COLUMNS, step0_row

    rows = []
    for task in args.tasks:
        base_rows = pd.read_csv(results_dir() / "base" / f"{task}.csv")
        for bc_steps in args.bc_steps:
            overrides = {} if bc_steps is None else {"bc_steps": bc_steps}
            for method in args.methods:
                row = {**step0_row(task, method, base_rows, args.workers, learner_overrides=overrides),
                       "bc_steps": bc_steps}
                rows.append(row)
                print(pd.DataFrame([row])[["task", "method", "bc_steps", *STEP0_COLUMNS[2:]]].to_string(index=False),
                      flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.out:
        from cohirl.io import write_csv

        write_csv(table, args.out)


if __name__ == "__main__":
    main()
