"""Build hook: ship the conformance suites inside the package.

The suites' one source of truth is the repository's top-level ``suites/``
(the engine reads it there in a checkout or an editable install). A wheel
has no place beside the package, so the build copies ``suites/`` to
``aoeconform/suites`` in the built package, where the engine looks next
(``aoeconform.scenario.loader.shipped_suites_dir``). Everything else is in
pyproject.toml.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
SUITES = os.path.join(HERE, "suites")


class BuildPyWithSuites(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False) or not os.path.isdir(SUITES):
            return  # an editable install reads suites/ in place
        target = os.path.join(self.build_lib, "aoeconform", "suites")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(SUITES, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


setup(cmdclass={"build_py": BuildPyWithSuites})
