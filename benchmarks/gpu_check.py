"""Prepared GPU check of the fused SimLabel op (issue 3): one run, well under 5 minutes on an H100/H200.

1. Correctness: the Triton kernels against the eager reference on CUDA, float32 (rtol 1e-5) and bfloat16
   (same low-precision logits, rtol 2e-2), for several option sets, including gradients.
2. Speed: forward + backward of Triton, eager reference and ``torch.compile(reference)`` at the four sizes of
   the CPU benchmark; achieved memory bandwidth (bytes the op must move / time) as a fraction of the device peak.

    python benchmarks/gpu_check.py                 # on a CUDA machine
    python benchmarks/gpu_check.py --smoke         # the script's logic on the CPU (the CPU op), tiny sizes

Targets: ≥ 5x eager and ≥ 1.5x compiled reference at the large sizes, ≥ 50 % of peak bandwidth at
(8192, 64, 16). Exit status 1 when a correctness check fails (speed is reported, not asserted).
"""
from __future__ import annotations

import argparse
import sys
import time

SIZES = [(64, 10, 8), (1024, 44, 10), (8192, 64, 16), (4096, 1000, 10)]
#: Peak DRAM bandwidth in bytes/s by device-name fragment (vendor data sheets).
PEAK_BANDWIDTH = {"H200": 4.8e12, "H100 PCIe": 2.0e12, "H100": 3.35e12, "A100": 2.0e12}
OPTION_SETS = [
    {},
    {"kl_direction": "forward", "kl_weight": "evidence"},
    {"contributors": "all", "mode": "simlabel"},
    {"soft_source": "labels", "mode": "skip"},
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="run the script's logic on the CPU with tiny sizes")
    p.add_argument("--repeats", type=int, default=20, help="timed repetitions per measurement (min is reported)")
    return p.parse_args(argv)


def make_case(torch, B, A, C, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, A, C, generator=g)
    labels = torch.randint(0, C, (B, A), generator=g)
    labels[torch.rand(B, A, generator=g) < 0.8] = -1
    labels[0] = -1
    similarity = torch.rand(A, A, generator=g)
    similarity = (similarity + similarity.T) / 2
    return logits.to(device), labels.to(device), similarity.to(device)


def check_correctness(torch, simlabel_loss, device, sizes) -> list[str]:
    failures = []
    for B, A, C in sizes:
        logits, labels, similarity = make_case(torch, B, A, C, device)
        for dtype, rtol, atol in ((torch.float32, 1e-5, 1e-6), (torch.bfloat16, 2e-2, 2e-3)):
            for options in OPTION_SETS:
                x = logits.to(dtype)
                got_x, ref_x = x.clone().requires_grad_(), x.float().clone().requires_grad_()
                got = simlabel_loss(got_x, labels, similarity, **options)
                ref = simlabel_loss(ref_x, labels, similarity, backend="reference", **options)
                got.loss.backward()
                ref.loss.backward()
                try:
                    torch.testing.assert_close(got.loss, ref.loss, rtol=rtol, atol=atol)
                    torch.testing.assert_close(got.confidence, ref.confidence, rtol=rtol, atol=atol)
                    torch.testing.assert_close(got_x.grad.float(), ref_x.grad, rtol=rtol, atol=atol)
                    assert int(got.n_kl) == int(ref.n_kl) and int(got.n_ce) == int(ref.n_ce)
                    if dtype == torch.float32:
                        assert torch.equal(got.impute_mask, ref.impute_mask)
                except AssertionError as exc:
                    failures.append(f"{(B, A, C)} {dtype} {options}: {str(exc).splitlines()[0]}")
    return failures


def timed(torch, fn, repeats, device) -> float:
    fn()  # warm-up (and compilation)
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def bytes_moved(B, A, C, elt) -> int:
    """What forward + backward must read and write at least: logits, labels, similarity; the per-entry outputs;
    the gradient buffer written and read back; d logits written."""
    return B * A * C * (elt + 4 + 4 + elt) + B * A * (8 + 4 + 8 + 1) + A * A * 4


def peak_bandwidth(torch) -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((bw for key, bw in PEAK_BANDWIDTH.items() if key in name), None)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from simlabel_ext import simlabel_loss
    from simlabel_ext.ops import SimLabelOptions, simlabel_loss_reference

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; use --smoke for a CPU logic check", file=sys.stderr)
        return 2
    sizes = [(4, 5, 3), (3, 20, 10)] if args.smoke else SIZES
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu (smoke)'}; torch {torch.__version__}")

    failures = check_correctness(torch, simlabel_loss, device, sizes)
    print(f"correctness: {'OK' if not failures else f'{len(failures)} FAILED'}")
    for line in failures:
        print("  " + line)

    options = SimLabelOptions()

    def reference_step(x, labels, similarity):
        out = simlabel_loss_reference(x, labels, similarity, options)
        out.loss.backward()

    compiled_step = torch.compile(reference_step) if device == "cuda" else reference_step
    peak = peak_bandwidth(torch)
    header = f"{'B, A, C':>18} {'dtype':>9} {'triton ms':>10} {'eager ms':>10} {'compiled ms':>12} {'x eager':>8} {'x compiled':>11} {'GB/s':>8} {'% peak':>7}"
    print(header)
    repeats = 2 if args.smoke else args.repeats
    for B, A, C in sizes:
        logits, labels, similarity = make_case(torch, B, A, C, device)
        for dtype in (torch.float32, torch.bfloat16):
            x = logits.to(dtype).requires_grad_()

            def fused():
                simlabel_loss(x, labels, similarity).loss.backward()

            def eager():
                reference_step(x, labels, similarity)

            def compiled():
                compiled_step(x, labels, similarity)

            t_fused = timed(torch, fused, repeats, device)
            t_eager = timed(torch, eager, repeats, device)
            t_compiled = timed(torch, compiled, repeats, device)
            gbps = bytes_moved(B, A, C, x.element_size()) / t_fused / 1e9
            share = f"{100 * gbps * 1e9 / peak:6.1f}%" if peak else "    n/a"
            print(
                f"{str((B, A, C)):>18} {str(dtype).split('.')[-1]:>9} {t_fused * 1e3:10.3f} {t_eager * 1e3:10.3f} "
                f"{t_compiled * 1e3:12.3f} {t_eager / t_fused:8.1f} {t_compiled / t_fused:11.1f} {gbps:8.1f} {share}"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
