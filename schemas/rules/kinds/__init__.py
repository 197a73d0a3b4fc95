"""The rule kinds, one module each; every module here with a ``KIND`` is registered by
:mod:`vsa.schemas.rules` under ``KIND.name`` (adding a kind is adding a module)."""
