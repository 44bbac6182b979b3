"""Packaging benchmark: how fast the pickle scanner reads a large file.

    .venv/bin/python benchmarks/packaging_bench.py [--megabytes 500]

Writes a joblib file of about 500 MB (a scikit-learn forest plus a large float array, so the
stream holds both pickled objects and raw array bytes), then measures reading it once with
plain 1 MB reads (the floor any inspection pays) against `registry.packaging.scan.scan`, best
of three each, after a warm-up read so both see the page cache. Prints a Markdown table.
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=500)
    args = parser.parse_args()
    import joblib
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from registry.packaging.scan import scan

    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)
    weights = np.random.default_rng(0).random(args.megabytes * 1024 * 1024 // 8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.joblib"
        joblib.dump({"model": forest, "weights": weights}, path)
        size = path.stat().st_size

        def read_once() -> None:
            with path.open("rb") as handle:
                while handle.read(1024 * 1024):
                    pass

        def scan_once() -> None:
            with path.open("rb") as handle:
                report = scan(handle)
            assert report.verdict == "safe", report.as_dict()

        read_once()
        timings = {}
        for label, run in (("read the file once", read_once), ("scan", scan_once)):
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - started)
            timings[label] = best
    mb = size / 1024 / 1024
    print(f"\n{mb:.0f} MB joblib file (forest + float array), best of 3\n")
    print("| pass | seconds | MB/s |")
    print("|---|---|---|")
    for label, seconds in timings.items():
        print(f"| {label} | {seconds:.2f} | {mb / seconds:.0f} |")
    print(
        f"\nscan throughput = {timings['read the file once'] / timings['scan']:.0%} of a "
        "plain read (target: at least 50%)"
    )


if __name__ == "__main__":
    main()
