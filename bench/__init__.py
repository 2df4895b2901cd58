"""Benchmarks (not timed tests).

python -m bench                  fastsync vs skopeo on a generated release-like corpus (markdown table)
python -m bench --quick          the same at scale 0.1, one repetition (smoke check)
python -m bench.corpus           generate (or find) the corpus only
python -m bench.micro            native micro-benchmarks
python -m bench.recompress_bench, bench.sync_bench, bench.storage_bench   feature benchmarks on the same harness
"""
