"""Support code for the tests: stand-in devices (sshd, adbd, the emulated arm64 board, a hostile device),
a fake lab store and small helpers. Test modules import them as ``from support.<module> import ...``
(pytest puts ``tests/`` on ``sys.path`` because ``tests/conftest.py`` sits there with no ``__init__.py``)."""
