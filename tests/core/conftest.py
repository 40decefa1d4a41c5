import pytest

from core.data import leave_one_out
from neural_data import rule_sequences


@pytest.fixture(scope="module")
def rule_data():
    """Sequences a model can learn (next = rule[previous]) and their leave-one-out split: the training
    loop's tests (test_training.py, test_training_budget.py) train on them."""
    data = rule_sequences(n_users=300, n_items=30)
    return data, leave_one_out(data)
