import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every flow test runs on one thread (see the `one_thread` fixture)."""
