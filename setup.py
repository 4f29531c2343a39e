"""Build hook: ship the conformance suites and the fuzz corpus inside the package.

Their one source of truth is the repository's top level (``suites/``,
``corpora/``), read there in a checkout or an editable install. A wheel has no
place beside the package, so the build copies them to ``aoeconform/suites`` and
``aoeconform/corpora`` in the built package, where the code looks next
(``aoeconform.scenario.loader.shipped_suites_dir``,
``aoeconform.fuzz.seeds.default_corpus_dir``). Everything else is in
pyproject.toml.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED_DIRS = ("suites", "corpora")


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them in place
        for name in SHIPPED_DIRS:
            source = os.path.join(HERE, name)
            if not os.path.isdir(source):
                continue
            target = os.path.join(self.build_lib, "aoeconform", name)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildPyWithData})
