"""The code that memlib's speed-ups replaced, loaded from git history as the baselines of ``bench.py``: a ratio is
against the old code itself, measured in the same run, not against a re-typed copy of it.

:func:`old_module` execs a memlib module's source as of a commit (``git show COMMIT:PATH``) as a sibling module of
the package (relative imports resolve to today's memlib), so its functions can be timed beside today's. It needs a
git checkout with that commit; otherwise it raises :class:`BaselineUnavailable`, which ``bench.py`` records as a
skipped step."""
from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class BaselineUnavailable(RuntimeError):
    """The old code cannot be loaded here (no git, or a checkout without that commit)."""


def old_module(path: str, commit: str) -> types.ModuleType:
    """The module at ``path`` (e.g. ``"memlib/lm.py"``) as of ``commit``, loaded under the name
    ``memlib._old_<commit>_<name>``."""
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, text=True,
                                check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise BaselineUnavailable(f"the baseline {path} as of {commit} needs a git checkout with that commit ({e})")
    parts = Path(path).with_suffix("").parts
    package = ".".join(parts[:-1])
    importlib.import_module(package)
    name = f"{package}._old_{commit}_{parts[-1]}"
    module = types.ModuleType(name)
    module.__package__ = package
    module.__file__ = f"{commit}:{path}"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own repository's history
    return module
