"""The installed neuronatlas version, in a module that imports nothing of the package.

Modules that record the version (the store's runs, the scrape's manifest, the web app) import it
from here rather than from `neuronatlas`, whose lazy `Atlas` would tie them to the whole package
in the import graph.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neuronatlas")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
