# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What every filter entry file of sgivu.deploy shares (controller side only).

The logic of a filter lives in ``plugins/module_utils/``, which raises plain exceptions whose
messages are written for an operator (they name services, keys and paths, never a secret
value). :func:`operator_errors` turns those into ``AnsibleFilterError`` with the message as it
is, and nothing chained: a chained traceback would carry the filter's arguments, secrets
included. :func:`filters` builds ``FilterModule.filters()`` from the functions themselves.

The entry files import no ``module_utils`` when they load: each filter asks :func:`module_utils`
for its logic when it is called. Ansible (2.19) finds a collection's filter by loading every
filter file of the collection, compiled from source with no bytecode cache, in the worker process
of every task that names one; importing the whole logic there cost about 0.1 s a task (measured:
0.13 s for a task calling a trivial filter, 0.04 s for a task calling none), paid by some thirty
tasks of a deploy.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any, Callable, Dict, Type, Union

from ansible.errors import AnsibleFilterError


def module_utils(name: str) -> ModuleType:
    """The module ``plugins/module_utils/<name>.py`` of this collection, imported on first use
    (Python keeps it in ``sys.modules`` for the rest of the process). Raises ImportError."""
    return importlib.import_module(f"ansible_collections.sgivu.deploy.plugins.module_utils.{name}")


def operator_errors(*errors: Union[Type[BaseException], str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a filter so that ``errors`` fail the task with their own message, unchained.

    An error is a class, or ``"<module>.<Class>"`` naming one in ``plugins/module_utils``, looked
    up only when the filter raises (by then the filter has imported that module)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                if isinstance(exc, _classes(errors)):
                    raise AnsibleFilterError(str(exc)) from None
                raise

        return wrapper

    return decorate


def _classes(errors: tuple) -> tuple:
    """The exception classes ``errors`` name (see :func:`operator_errors`)."""
    return tuple(
        getattr(module_utils(error.rpartition(".")[0]), error.rpartition(".")[2]) if isinstance(error, str) else error
        for error in errors
    )


def filters(*functions: Callable[..., Any]) -> Dict[str, Callable[..., Any]]:
    """The ``filters()`` mapping of a FilterModule: each function under its own name."""
    return {function.__name__: function for function in functions}
