"""Builds the optional native core (ext/ -> fastsync.core._native); metadata lives in pyproject.toml."""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
PYX = os.path.join("ext", "_native.pyx")
GENERATED_C = os.path.join("ext", "_native.c")   # what cythonize writes (git-ignored)
PXDS = ["libcrypto.pxd", "libzstd.pxd", "libisal.pxd", "libz.pxd", "fs_sha256.h", "fs_isal.h", "fs_zstd.h"]
# Optional libraries: name -> (library, header, a symbol it has, the macro ext/fs_*.h switch on).
# Each one found is linked; a missing one falls back inside the extension (see ext/fs_*.h).
# FASTSYNC_NATIVE_WITHOUT=isal,zstd,openssl leaves those out even when present (the tests use it).
OPTIONAL_LIBS = {
    "openssl": ("crypto", "openssl/evp.h", "EVP_sha256", "FASTSYNC_HAVE_OPENSSL"),
    "isal": ("isal", "isa-l/igzip_lib.h", "isal_inflate_init", "FASTSYNC_HAVE_ISAL"),
    "zstd": ("zstd", "zstd.h", "ZSTD_createDCtx", "FASTSYNC_HAVE_ZSTD"),
}


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
            found = self._optional_libs(ext)
            super().build_extension(ext)
            print(f"fastsync: native core built ({found})", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001
            self._fallback(exc)
            self.failed = getattr(self, "failed", set()) | {ext.name}

    def copy_extensions_to_source(self):  # --inplace / editable: skip what did not build
        self.extensions = [e for e in self.extensions if e.name not in getattr(self, "failed", ())]
        super().copy_extensions_to_source()

    def _optional_libs(self, ext):
        """Probe each optional library (compile and link a one-line program); use the ones found."""
        without = left_out()
        found = []
        for name, (lib, header, symbol, macro) in OPTIONAL_LIBS.items():
            if name not in without and self._links(lib, header, symbol):
                ext.libraries.append(lib)
                ext.define_macros.append((macro, "1"))
                found.append(name)
        return "with " + ", ".join(found) if found else "without optional libraries"

    def _links(self, lib, header, symbol):
        import tempfile
        with tempfile.TemporaryDirectory(prefix="fastsync-probe-") as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(f"#include <{header}>\nint main(void) {{ return (int)(long)(void *)&{symbol} == 1; }}\n")
            saved = os.dup(2)
            try:
                with open(os.devnull, "w") as null:
                    os.dup2(null.fileno(), 2)      # a missing library is an expected answer, not noise
                    objs = self.compiler.compile([src], output_dir=tmp)
                    self.compiler.link_executable(objs, "probe", output_dir=tmp, libraries=[lib])
                return True
            except Exception:  # noqa: BLE001 - CompileError/LinkError: not available
                return False
            finally:
                os.dup2(saved, 2)
                os.close(saved)

    @staticmethod
    def _fallback(exc):
        if required():
            fail_required(exc)
        print(f"fastsync: native core NOT built ({exc}); using the pure-Python backend", file=sys.stderr)


def left_out():
    """The optional libraries FASTSYNC_NATIVE_WITHOUT names (an unknown name ends the build)."""
    without = {w.strip() for w in os.environ.get("FASTSYNC_NATIVE_WITHOUT", "").split(",") if w.strip()}
    unknown = without - set(OPTIONAL_LIBS)
    if unknown:
        raise SystemExit(f"fastsync: FASTSYNC_NATIVE_WITHOUT names unknown libraries: {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(OPTIONAL_LIBS)})")
    return without


def extensions():
    left_out()
    if not os.path.exists(os.path.join(HERE, PYX)) or os.environ.get("FASTSYNC_NO_EXT") == "1":
        return []
    from setuptools import Extension

    def native(source):
        # libz (required): ratio deflate, crc32; OPTIONAL_LIBS are added by the probes in build_ext.
        return Extension("fastsync.core._native", [source], libraries=["z"], include_dirs=["ext"],
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
