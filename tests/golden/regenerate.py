"""Rewrite the behaviour snapshots in tests/golden/snapshots/.

    !!!  DO NOT RUN THIS TO MAKE A FAILING SNAPSHOT TEST PASS.  !!!

The snapshot is the record of what arrpo's commands write (verdicts, rewards, files). It exists to
prove that a refactor changed nothing. Regenerate it ONLY for a deliberate behaviour change, and
say in the commit message which change and which snapshot files it touched (the diff of the JSON
files is what reviewers read). A renamed flag or config key is NOT a behaviour change: edit
COMMANDS / JUDGES_YAML / TRAIN_CONFIG in test_behaviour_snapshot.py instead. A new key in a
record: list it in ALLOWED_NEW_KEYS with its reason, or regenerate if it should be recorded.

Usage (from the repository root, with ../shared/data present):

    python tests/golden/regenerate.py                 # every scenario
    python tests/golden/regenerate.py judge_both eval # only these

Each scenario is run twice; nothing is written if the two runs differ (a nondeterminism to fix first).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.golden import test_behaviour_snapshot as table
from tests.golden.scenarios import build_inputs
from tests.golden.snapshot import Diff, compare, save_snapshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"scenarios (default: all of {', '.join(table.COMMANDS)})")
    args = parser.parse_args(argv)
    from tests.conftest import SHARED_DATA

    unknown = [n for n in args.names if n not in table.COMMANDS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(table.COMMANDS)}")
    if not SHARED_DATA.is_dir():
        parser.error(f"shared data not found at {SHARED_DATA}")
    names = args.names or list(table.COMMANDS)
    scenarios = table.scenarios()
    with tempfile.TemporaryDirectory(prefix="arrpo-golden-") as tmp:
        runs = []
        for attempt in ("a", "b"):
            inputs = build_inputs(Path(tmp) / attempt, SHARED_DATA)
            runs.append({name: table.run(scenarios[name], inputs) for name in names})
        failed = False
        for name in names:
            first, second = runs[0][name], runs[1][name]
            first.pop("_output_tail")
            second.pop("_output_tail")
            diff = Diff()
            compare(first, second, name, diff, allowed_new={})
            if diff:
                failed = True
                print(f"{name}: two runs differ, not written: {diff.report()}", file=sys.stderr)
                continue
            print(f"wrote {save_snapshot(name, first)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
