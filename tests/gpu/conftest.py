"""The GPU tests reuse the simulate tests' tiny trained model (``checkpoint``, trained once per session)."""

from tests.simulate.conftest import checkpoint  # noqa: F401 - a fixture, registered by being imported here
