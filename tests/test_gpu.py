"""The op and the training step on CUDA without host synchronisation (issue 15). These tests run where CUDA is
present (they skip on the CPU-only CI machine); the CPU test below checks the structure they rely on.

- forward + backward of ``simlabel_loss(checks="deferred")`` run under ``torch.cuda.set_sync_debug_mode("error")``,
  and a bad label or similarity is recorded, then raised (named) by ``check_errors``;
- the op runs inside CUDA-graph capture and replays to the eager values;
- a training epoch on CUDA synchronises only in the step's one read of the host.
"""
from __future__ import annotations

import pytest
import torch

from simlabel_ext import simlabel_loss
from simlabel_ext.kernels import triton_available
from simlabel_ext.ops import check_errors
from simlabel_ext.train import TrainConfig, Trainer
from simlabel_ext.train import trainer as trainer_module

cuda = pytest.mark.skipif(not (torch.cuda.is_available() and triton_available()), reason="needs CUDA and triton")
CONFIG = TrainConfig(dataset="synthetic", dataset_options={"preset": "custom", "items": 300, "annotators": 8,
                                                           "classes": 4, "accuracy": 0.9, "separation": 2.0},
                     model_options={"hidden": 16, "depth": 1}, epochs=2, batch_size=32, lr=3e-2, threshold=0.3,
                     progress=False)


def case(B=256, A=44, C=10, device="cuda", seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, A, C, generator=g)
    labels = torch.randint(0, C, (B, A), generator=g)
    labels[torch.rand(B, A, generator=g) < 0.8] = -1
    similarity = torch.rand(A, A, generator=g) * 0.3
    return logits.to(device), labels.to(device), similarity.to(device)


def test_the_cpu_step_reads_the_host_once_per_step(monkeypatch, tmp_path):
    calls = []
    original = trainer_module.read_step

    def counting(packed):
        calls.append(1)
        return original(packed)

    monkeypatch.setattr(trainer_module, "read_step", counting)
    trainer = Trainer(CONFIG.replace(device="cpu"), log=lambda line: None)
    trainer.fit()
    assert len(calls) == trainer.global_step == CONFIG.epochs * len(trainer.batches)


@cuda
@pytest.mark.parametrize("shape", [(256, 44, 10), (64, 1000, 10)], ids=["grouped", "sparse"])
def test_forward_and_backward_do_not_synchronise(shape):
    logits, labels, similarity = case(*shape)
    x = logits.clone().requires_grad_()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = simlabel_loss(x, labels, similarity, checks="deferred")
        out.loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    ref = simlabel_loss(logits.cpu().requires_grad_(), labels.cpu(), similarity.cpu(), backend="reference")
    torch.testing.assert_close(out.loss.cpu(), ref.loss.detach(), rtol=1e-5, atol=1e-6)
    check_errors(out.errors, labels, similarity, shape[2])

    labels[3, 5] = shape[2] + 2
    torch.cuda.set_sync_debug_mode("error")
    try:
        bad = simlabel_loss(logits, labels, similarity, checks="deferred")  # recorded, not raised
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with pytest.raises(ValueError, match=rf"labels\[3, 5\] = {shape[2] + 2} is outside 0\.\.{shape[2] - 1}"):
        check_errors(bad.errors, labels, similarity, shape[2])
    with pytest.raises(ValueError, match=r"labels\[3, 5\]"):
        simlabel_loss(logits, labels, similarity)  # checks="sync": raised before returning
    labels[3, 5] = -1
    similarity[2, 7] = -0.5
    with pytest.raises(ValueError, match=r"similarity\[2, 7\] = -0\.5 must be finite and >= 0"):
        simlabel_loss(logits, labels, similarity)


@cuda
def test_the_op_runs_inside_cuda_graph_capture():
    logits, labels, similarity = case()
    x = logits.clone().requires_grad_()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up (compilation, allocations) outside the capture
        for _ in range(2):
            x.grad = None
            simlabel_loss(x, labels, similarity, checks="deferred").loss.backward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    x.grad = None
    with torch.cuda.graph(graph):
        out = simlabel_loss(x, labels, similarity, checks="deferred")
        out.loss.backward()
    eager_x = logits.clone().requires_grad_()
    eager = simlabel_loss(eager_x, labels, similarity)
    eager.loss.backward()
    graph.replay()
    torch.testing.assert_close(out.loss, eager.loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(x.grad, eager_x.grad, rtol=1e-6, atol=1e-7)


@cuda
def test_a_training_epoch_synchronises_only_in_the_steps_one_host_read(monkeypatch):
    original = trainer_module.read_step

    def allowed(packed):
        torch.cuda.set_sync_debug_mode("default")
        try:
            return original(packed)
        finally:
            torch.cuda.set_sync_debug_mode("error")

    monkeypatch.setattr(trainer_module, "read_step", allowed)
    trainer = Trainer(CONFIG.replace(device="cuda", epochs=1), log=lambda line: None)
    batches = list(trainer.batches.global_epoch(0))
    trainer._step(batches[0], 3.0, torch.zeros(4, dtype=torch.float64))  # warm-up (Triton compilation)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in batches[1:]:
            trainer._step(batch, 3.0, torch.zeros(4, dtype=torch.float64))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(trainer.store) > 0, "the epoch is meant to impute"
