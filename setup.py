"""Builds the optional native core (ext/ -> fastsync.core._native); metadata lives in pyproject.toml."""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
PYX = os.path.join("ext", "_native.pyx")
GENERATED_C = os.path.join("ext", "_native.c")   # what cythonize writes (git-ignored)
PXDS = ["libcrypto.pxd", "libzstd.pxd", "libisal.pxd", "libz.pxd"]


def required():
    """FASTSYNC_REQUIRE_NATIVE=1: the native core must build; no silent pure-Python fallback."""
    return os.environ.get("FASTSYNC_REQUIRE_NATIVE") == "1"


def fail_required(reason):
    """Exit non-zero with one line (no traceback) when the native core was required."""
    reason = " ".join(str(reason).split()) or "unknown error"
    raise SystemExit(f"fastsync: native core NOT built ({reason[:300]}) and FASTSYNC_REQUIRE_NATIVE=1 forbids "
                     "the pure-Python fallback")


class OptionalBuildExt(build_ext):
    """Build the extension if possible; otherwise install the pure-Python package."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure falls back
            self._fallback(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
            print("fastsync: native core built (accelerated)", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001
            self._fallback(exc)
            self.failed = getattr(self, "failed", set()) | {ext.name}

    def copy_extensions_to_source(self):  # --inplace / editable: skip what did not build
        self.extensions = [e for e in self.extensions if e.name not in getattr(self, "failed", ())]
        super().copy_extensions_to_source()

    @staticmethod
    def _fallback(exc):
        if required():
            fail_required(exc)
        print(f"fastsync: native core NOT built ({exc}); using the pure-Python backend", file=sys.stderr)


def extensions():
    if not os.path.exists(os.path.join(HERE, PYX)) or os.environ.get("FASTSYNC_NO_EXT") == "1":
        return []
    from setuptools import Extension

    def native(source):
        # libcrypto: EVP SHA-256; libzstd; libisal: gzip inflate + fast deflate; libz: ratio deflate.
        return Extension("fastsync.core._native", [source], libraries=["crypto", "zstd", "isal", "z"],
                         extra_compile_args=["-O3"], depends=[os.path.join("ext", n) for n in PXDS])

    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        if generated_c_is_current():   # cythonize's earlier output still matches the sources: compile it
            print(f"fastsync: Cython missing; compiling the generated {GENERATED_C}", file=sys.stderr)
            return [native(GENERATED_C)]
        if required():
            fail_required(f"Cython is missing ({exc}) and there is no up-to-date {GENERATED_C}")
        print("fastsync: Cython missing; using the pure-Python backend", file=sys.stderr)
        return []

    ext = native(PYX)
    try:
        return cythonize([ext], language_level=3, quiet=True, include_path=["ext"])
    except Exception as exc:  # noqa: BLE001 - a Cython error falls back like a C error
        OptionalBuildExt._fallback(exc)
        return []


def generated_c_is_current():
    """ext/_native.c exists and is newer than the .pyx and every .pxd it was generated from."""
    try:
        c_time = os.path.getmtime(os.path.join(HERE, GENERATED_C))
        return all(os.path.getmtime(os.path.join(HERE, src)) <= c_time
                   for src in [PYX, *(os.path.join("ext", n) for n in PXDS)])
    except OSError:
        return False


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
