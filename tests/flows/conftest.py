import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    # small problems: one thread avoids oversubscription on shared CI machines
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
