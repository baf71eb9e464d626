"""The errors that mean "bad input": shown as one paragraph, without a traceback (``--debug`` shows it)."""

from prunepeft.callback import NonFiniteLossError
from prunepeft.checkpoints import ResumeError
from prunepeft.config import ConfigError
from prunepeft.data import DataError
from prunepeft.handover import ExportError
from prunepeft.jobs import RunError
from prunepeft.models import ModelError
from prunepeft.recipe import RecipeError
from prunepeft.search import BudgetError
from prunepeft.space import SpaceError

USER_ERRORS = (
    DataError, ModelError, SpaceError, BudgetError, RecipeError, RunError, ResumeError, NonFiniteLossError,
    ConfigError, ExportError,
)  # fmt: skip
