"""docs/study/sharing.py's dense similarity: hand-computed blend of the observed and the predicted kappa."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from simlabel_ext.similarity import SimilarityEngine


@pytest.fixture(scope="module")
def sharing(load_study_script):
    return load_study_script("sharing")


class FixedPredictions(torch.nn.Module):
    """A 'model' whose logits [B, A, C] put all mass on the given labels [N, A] of the items it is fed."""

    def __init__(self, labels: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.onehot = torch.nn.functional.one_hot(labels, num_classes).double()

    def forward(self, item_ids: torch.Tensor, labels=None):
        return SimpleNamespace(logits=self.onehot[item_ids.long()])


def test_dense_similarity_blends_observed_and_predicted_kappa(sharing):
    # 3 annotators, 6 training items; observed: annotators 0 and 1 share items 0-3 (kappa 0), annotator 2 shares
    # nothing with anyone
    observed = torch.tensor([[0, 0, -1], [1, 0, -1], [0, 1, -1], [1, 1, -1], [-1, -1, 0], [-1, -1, 1]])
    predicted = torch.tensor([[0, 0, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 1, 0], [1, 0, 1]])
    trainer = SimpleNamespace(dataset=SimpleNamespace(split=SimpleNamespace(train=torch.arange(6)), num_classes=2),
                              model=FixedPredictions(predicted, 2), inputs=torch.arange(6),
                              engine=SimilarityEngine(observed, 2))
    k_obs_01 = cohen_kappa_score(observed[:4, 0], observed[:4, 1])
    k_pred = lambda a, b: cohen_kappa_score(predicted[:, a], predicted[:, b])  # noqa: E731
    assert k_obs_01 == pytest.approx(0.0)
    s = sharing.dense_similarity(trainer, m=20.0)
    # pair (0, 1): n = 4 shared observed items; pairs with annotator 2: n = 0, the predicted kappa alone
    expected_01 = (4 * k_obs_01 + 20 * k_pred(0, 1)) / 24
    assert s[0, 1].item() == pytest.approx(expected_01)
    assert s[1, 0].item() == pytest.approx(expected_01)
    assert s[0, 2].item() == pytest.approx(max(0.0, k_pred(0, 2)))
    assert s[1, 2].item() == pytest.approx(max(0.0, k_pred(1, 2)))
    assert torch.all(s.diagonal() == 0)
    assert trainer.model.training  # the model is left in training mode
