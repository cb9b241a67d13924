"""Warnings and errors that tell a user what to change.

Every default in bdl either gives a right answer or raises one of these, naming the option
that fixes it.
"""

from __future__ import annotations

__all__ = ["DiagnosticsWarning", "NonFiniteError", "NotConvergedWarning"]


class NotConvergedWarning(UserWarning):
    """An optimisation (MAP, ensemble members, Laplace's mode, VI) stopped at its step cap
    before its convergence monitor was satisfied. The message names the option to raise."""


class DiagnosticsWarning(UserWarning):
    """A sampler's diagnostics say its draws are not to be trusted: max split R-hat > 1.1,
    a tiny effective sample size, or divergences above a few percent. The message names the
    option to change."""


class NonFiniteError(FloatingPointError):
    """A loss, gradient or parameter became NaN or infinite during a fit. Raised at once,
    naming the step, so that no NaN parameters are ever returned."""
