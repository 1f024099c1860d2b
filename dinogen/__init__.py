"""dinogen: a character-level RNN name generator written by hand in NumPy.

Importing the package is cheap: NumPy and the numerical modules are loaded
only by the submodules that need them.
"""

from dinogen.errors import DinogenError

__version__ = "0.1.0"

__all__ = ["DinogenError", "__version__"]
