"""docs/study/sharing.py: the ``--kl-into`` lever (the KL term's gradient routed into one part of a MaDL model) and
``--model-option``."""
from __future__ import annotations

import pytest
import torch

from simlabel_plugins.models import madl
from simlabel_ext.models import InputSpec


@pytest.fixture()
def sharing(load_study_script):
    return load_study_script("sharing")


def _model_and_batch():
    torch.manual_seed(0)
    model = madl.build(InputSpec("features", (5,)), num_annotators=4, num_classes=3, options={"hidden": 8})
    x = torch.randn(6, 5)
    labels = torch.tensor([[0, -1, 2, -1]] * 3 + [[-1, 1, -1, 0]] * 3)
    return model, x, labels


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {"gt": model.gt_head.weight.grad.abs().sum().item(), "ap": model.ap_output.weight.grad.abs().sum().item()}


@pytest.mark.parametrize("into, blocked", [("shared", "ap"), ("annotator", "gt")])
def test_kl_into_keeps_every_value_and_blocks_one_part_at_missing_entries_only(sharing, into, blocked):
    model, x, labels = _model_and_batch()
    plain = model(x, labels).logits.detach()
    sharing.route_kl(model, into)
    routed = model(x, labels).logits
    assert torch.equal(routed.detach(), plain)  # values unchanged: the same loss, the same soft labels
    assert torch.equal(model(x).logits.detach(), plain)  # without labels (evaluation): the plain forward
    missing = (labels < 0)[..., None]
    at_missing = _grads(model, torch.where(missing, routed, 0).logsumexp(-1).sum())
    assert at_missing[blocked] == 0 and at_missing[{"gt": "ap", "ap": "gt"}[blocked]] > 0
    at_observed = _grads(model, torch.where(missing, 0, model(x, labels).logits).logsumexp(-1).sum())
    assert at_observed["gt"] > 0 and at_observed["ap"] > 0  # the CE term still trains both parts


def test_kl_into_refuses_a_model_without_madl_parts(sharing):
    with pytest.raises(SystemExit, match="--kl-into needs madl"):
        sharing.route_kl(torch.nn.Linear(2, 2), "shared")


def test_model_options_reach_the_run_and_a_malformed_one_is_a_usage_error(sharing, monkeypatch, tmp_path, capsys):
    seen = {}

    class Stop(Exception):
        pass

    def trainer(config, out, log):
        seen["model_options"] = config.model_options
        raise Stop

    monkeypatch.setattr(sharing, "Trainer", trainer)
    with pytest.raises(Stop):
        sharing.main(["--dataset", "amer2-like", "--model", "madl", "--model-option", "instance=false",
                      "--model-option", "eta=0.7", "--out", str(tmp_path / "run")])
    assert seen["model_options"] == {"instance": "false", "eta": "0.7"}
    with pytest.raises(SystemExit) as stop:
        sharing.main(["--dataset", "amer2-like", "--model", "madl", "--model-option", "instance", "--out",
                      str(tmp_path / "bad")])
    assert stop.value.code == 2
    assert "--model-option expects KEY=VALUE; got 'instance'" in capsys.readouterr().err
