# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What every filter entry file of sgivu.deploy shares (controller side only).

The logic of a filter lives in ``plugins/module_utils/``, which raises plain exceptions whose
messages are written for an operator (they name services, keys and paths, never a secret
value). :func:`operator_errors` turns those into ``AnsibleFilterError`` with the message as it
is, and nothing chained: a chained traceback would carry the filter's arguments, secrets
included. :func:`filters` builds ``FilterModule.filters()`` from the functions themselves.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Type

from ansible.errors import AnsibleFilterError


def operator_errors(*errors: Type[BaseException]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a filter so that ``errors`` fail the task with their own message, unchained."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except errors as exc:
                raise AnsibleFilterError(str(exc)) from None

        return wrapper

    return decorate


def filters(*functions: Callable[..., Any]) -> Dict[str, Callable[..., Any]]:
    """The ``filters()`` mapping of a FilterModule: each function under its own name."""
    return {function.__name__: function for function in functions}
