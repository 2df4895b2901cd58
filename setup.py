"""Builds the optional native core (ext/ -> fastsync._native); metadata lives in pyproject.toml."""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
PYX = os.path.join("ext", "_native.pyx")
PXDS = ["libcrypto.pxd", "libzstd.pxd", "libisal.pxd", "libz.pxd"]


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
        if os.environ.get("FASTSYNC_REQUIRE_NATIVE") == "1":
            raise exc
        print(f"fastsync: native core NOT built ({exc}); using the pure-Python backend", file=sys.stderr)


def extensions():
    if not os.path.exists(os.path.join(HERE, PYX)) or os.environ.get("FASTSYNC_NO_EXT") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("fastsync: Cython missing; using the pure-Python backend", file=sys.stderr)
        return []
    from setuptools import Extension

    # libcrypto: EVP SHA-256; libzstd; libisal: gzip inflate + fast deflate; libz: ratio deflate.
    ext = Extension("fastsync._native", [PYX], libraries=["crypto", "zstd", "isal", "z"],
                    extra_compile_args=["-O3"], depends=[os.path.join("ext", n) for n in PXDS])
    try:
        return cythonize([ext], language_level=3, quiet=True, include_path=["ext"])
    except Exception as exc:  # noqa: BLE001 - a Cython error falls back like a C error
        OptionalBuildExt._fallback(exc)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
