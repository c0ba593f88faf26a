"""Pickling of the compiled build's frozen dataclasses, for what crosses processes: the service's
Context to its workers (``service/workers.py``) and the case log's parts of ``--jobs``
(``cases/parallel.py``).

Unpickling restores an object through its class's ``__setstate__``. The one mypyc gives a class
of the optional compiled build (``tools/compiled.py``) sets each attribute with ``setattr``,
which a frozen dataclass refuses (``FrozenInstanceError``). Registered here, such a class is
pickled as its fields and rebuilt as ``dataclasses`` rebuilds a slotted frozen class, with
``object.__setattr__`` per field; these classes hold nothing but their fields. The pure-Python
classes are left to their own pickling: they have no ``__mypyc_attrs__``.
"""

from __future__ import annotations

import copyreg
import dataclasses
import sys
from typing import Any


def register_compiled() -> None:
    """Pickle each compiled frozen dataclass of the adapter's imported modules by its fields."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("adapter."):
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and "__mypyc_attrs__" in vars(value)
                and dataclasses.is_dataclass(value)
                and getattr(value, "__dataclass_params__").frozen  # noqa: B009 - not typed
            ):
                copyreg.pickle(value, _fields_of)


def _fields_of(obj: Any) -> tuple[Any, ...]:
    values = tuple(getattr(obj, field.name) for field in dataclasses.fields(obj))
    return _rebuilt, (type(obj), values)


def _rebuilt(cls: Any, values: tuple[Any, ...]) -> Any:
    obj = cls.__new__(cls)
    for field, value in zip(dataclasses.fields(cls), values, strict=True):
        object.__setattr__(obj, field.name, value)
    return obj
