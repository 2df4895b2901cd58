"""Benchmarks (not timed tests).

python -m bench                  fastsync vs skopeo on a generated release-like corpus (markdown table)
python -m bench --quick          the same at scale 0.1, one repetition (smoke check)
python -m bench.corpus           generate (or find) the corpus only
python -m bench.micro            native micro-benchmarks
python -m bench.floor            the floor: a raw mover and a HEAD-only no-op (run by python -m bench)
python -m bench.startup          `fastsync --version` and `fastsync sync` to its first request
python -m bench.recompress_bench, bench.sync_bench, bench.storage_bench   feature benchmarks on the same harness
"""

import os as _os
import sys as _sys

# the test harness (real registries, proxies, sample images) lives in tests/support, outside the wheel
_TESTS = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), "tests")
if _TESTS not in _sys.path:
    _sys.path.insert(0, _TESTS)
