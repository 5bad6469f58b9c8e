"""Source sent into the student's kernel. Never imported there: the kernel gets the text.

Only plumbing lives here (settings, device mapping, writing captured values to a file);
no check, reference value or hidden seed is ever part of it.
"""

import json
from importlib import resources


def kernel_code(module: str, entry: str, config: dict) -> str:
    """Source that runs `entry(config)` from `module` in a private namespace.

    The student's namespace is left untouched: the code is exec'd in a fresh dict.
    """
    source = resources.files(__name__).joinpath(f"{module}.py").read_text(encoding="utf-8")
    program = f"{source}\n{entry}({json.dumps(config)!r})\n"
    return f"exec(compile({program!r}, '<grader-{module}>', 'exec'), {{'__name__': '__grader__'}})"
