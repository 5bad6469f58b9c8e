"""What a value is worth: captured values, comparison helpers, checks, the reference.

Assignment authors import their API from here:

    from grader.check import check, assert_close, Mismatch, PartialCredit, ModuleInfo, heatmap, say, task
"""

from grader.check.captured import ModuleInfo
from grader.check.checks import NotJudged, PartialCredit, check
from grader.check.compare import (Mismatch, as_tensor, assert_all_close, assert_close, assert_equal,
                                  assert_state_dict_close, assert_trained)
from grader.check.heatmap import heatmap
from grader.check.task import task
from grader.said import joined, say

__all__ = ["ModuleInfo", "Mismatch", "NotJudged", "PartialCredit", "as_tensor", "assert_all_close", "assert_close",
           "assert_equal", "assert_state_dict_close", "assert_trained", "check", "heatmap", "joined", "say", "task"]
