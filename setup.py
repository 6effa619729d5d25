"""Build the compiled core ``sparsemem._sparsecore`` from src/_sparsecore.pyx.

Environment switches:
  SPARSEMEM_SANITIZE=1   compile with AddressSanitizer + UndefinedBehaviorSanitizer
  SPARSEMEM_TRACE=1      Cython line tracing (for profiling; slow)
"""

import os
import shutil

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.join("include")

compile_args = ["-O3", "-fno-strict-aliasing"]
link_args = []
directives = {"language_level": "3"}
macros = []
if os.environ.get("SPARSEMEM_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    compile_args = ["-O1", "-g"] + san
    link_args = san
if os.environ.get("SPARSEMEM_TRACE"):
    directives.update(linetrace=True, binding=True)
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

ext = Extension(
    "sparsemem._sparsecore",
    sources=["src/_sparsecore.pyx"],
    include_dirs=[INCLUDE],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    define_macros=macros,
    depends=["include/sparsemem.h", "src/sparsemem/_sparsecore.pxd", "src/sparsemem/csparsemem.pxd"],
)


class BuildPyWithHeaders(build_py):
    """Ship include/sparsemem.h inside the package, for code that cimports the core."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "sparsemem", "include")
        os.makedirs(target, exist_ok=True)
        shutil.copy(os.path.join(HERE, "include", "sparsemem.h"), target)


setup(
    ext_modules=cythonize([ext], include_path=["src"], compiler_directives=directives,
                          force=bool(os.environ.get("SPARSEMEM_SANITIZE") or os.environ.get("SPARSEMEM_TRACE"))),
    cmdclass={"build_py": BuildPyWithHeaders},
)
