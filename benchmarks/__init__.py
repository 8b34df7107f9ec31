"""deepbreadth's benchmark harness: `python -m benchmarks --help` (see benchmarks/README.md).

Not installed with deepbreadth; run it from the repository root. Importing this
package imports nothing heavy: frameworks are imported only inside the
measurement subprocesses (benchmarks/worker.py), after their thread settings.
"""
