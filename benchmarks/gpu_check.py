"""The GPU check of the fused SimLabel op (issue 15): correctness, then a fair timing of every contender.

1. Correctness: the op (Triton kernels) against the eager reference on CUDA, float32 (rtol 1e-5) and bfloat16
   (the same low-precision logits, rtol 2e-2), several option sets, losses, confidences, impute masks away from
   the threshold, gradients; and a bad label recorded in the errors word without a host synchronisation.
2. Speed, forward + backward per call, with ``triton.testing.do_bench`` (warm-up, the L2 cache flushed before
   every repetition, median of the repetitions, the input's gradient reset between calls), for three contenders
   on the same inputs: the eager reference, ``torch.compile`` of the reference loss (backward outside the compiled
   function), and the op (``checks="deferred"``: what the trainer runs). Bandwidth is counted on the compulsory
   bytes only (logits in, d logits out, labels, the per-entry outputs, S) and given against the copy bandwidth
   measured in the same run and against the datasheet peak.

    python benchmarks/gpu_check.py [--json FILE]   # on a CUDA machine (about 2-3 minutes on an H200)
    python benchmarks/gpu_check.py --smoke         # the script's logic on the CPU (the CPU op), tiny sizes

Shapes (B, A, C): (64, 10, 8), (1024, 44, 10), (8192, 64, 16) at 80 % missing, float32 and bfloat16; (4096, 1000,
10) and (4096, 2571, 10) with about 50 labels per item (CIFAR-10H's density) and with 20 % labelled, float32.
Exit status 1 when a correctness check fails (speed is reported, not asserted).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

#: (B, A, C, labelled share or labels per item, dtypes)
SHAPES = [
    (64, 10, 8, 0.2, ("float32", "bfloat16")),
    (1024, 44, 10, 0.2, ("float32", "bfloat16")),
    (8192, 64, 16, 0.2, ("float32", "bfloat16")),
    (4096, 1000, 10, 50, ("float32",)),
    (4096, 1000, 10, 0.2, ("float32",)),
    (4096, 2571, 10, 50, ("float32",)),
    (4096, 2571, 10, 0.2, ("float32",)),
]
SMOKE_SHAPES = [(4, 5, 3, 0.5, ("float32",)), (3, 20, 10, 5, ("float32", "bfloat16"))]
#: Datasheet DRAM bandwidth in bytes/s by device-name fragment.
DATASHEET_BANDWIDTH = {"H200": 4.8e12, "H100 PCIe": 2.0e12, "H100": 3.35e12, "A100": 2.0e12}
OPTION_SETS = [
    {},
    {"kl_direction": "forward", "kl_weight": "evidence"},
    {"contributors": "all", "mode": "simlabel"},
    {"soft_source": "labels", "mode": "skip"},
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="run the script's logic on the CPU with tiny sizes")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the tables as JSON")
    p.add_argument("--rep", type=int, default=100, help="milliseconds of timed repetitions per measurement")
    return p.parse_args(argv)


def make_case(torch, B, A, C, density, device, seed=0):
    """Logits, labels and S; ``density`` < 1 is the labelled share, >= 1 the labels per item."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, A, C, generator=g)
    share = density if density < 1 else min(1.0, density / A)
    labels = torch.randint(0, C, (B, A), generator=g)
    labels[torch.rand(B, A, generator=g) >= share] = -1
    labels[0] = -1
    similarity = torch.rand(A, A, generator=g) * 0.1
    similarity = (similarity + similarity.T) / 2
    return logits.to(device), labels.to(device), similarity.to(device)


def check_correctness(torch, simlabel_loss, check_errors, device, shapes) -> list[str]:
    failures = []
    for B, A, C, density, dtypes in shapes:
        logits, labels, similarity = make_case(torch, min(B, 512), A, C, density, device)
        for dtype_name in dtypes:
            dtype = getattr(torch, dtype_name)
            rtol, atol = (1e-5, 1e-6) if dtype == torch.float32 else (2e-2, 2e-3)
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
                    away = (ref.confidence - 0.6).abs() > 1e-4  # masks flip with summation order at the threshold
                    assert torch.equal(got.impute_mask[away], ref.impute_mask[away])
                except AssertionError as exc:
                    failures.append(f"{(B, A, C, density)} {dtype_name} {options}: {str(exc).splitlines()[0]}")
        bad = labels.clone()
        bad[1, A // 2] = C + 3
        try:  # CUDA records it (no sync) and check_errors raises; the CPU kernel raises at once
            check_errors(simlabel_loss(logits, bad, similarity, checks="deferred").errors, bad, similarity, C)
            failures.append(f"{(B, A, C)}: a bad label was not recorded")
        except ValueError as exc:
            if f"labels[1, {A // 2}]" not in str(exc):
                failures.append(f"{(B, A, C)}: wrong error {exc}")
    return failures


def compulsory_bytes(B, A, C, elt) -> int:
    """What forward + backward must move at least: logits in, d logits out (``elt`` bytes each), int64 labels,
    the per-entry outputs (float32 confidence, int64 argmax, bool mask) and float32 S."""
    return B * A * C * 2 * elt + B * A * (8 + 4 + 8 + 1) + A * A * 4


def copy_bandwidth(torch) -> float:
    """Bytes/s of a device-to-device copy of 1 GiB (read + write), measured now: the practical ceiling."""
    from triton.testing import do_bench

    src = torch.empty(2**28, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    ms = do_bench(lambda: dst.copy_(src), warmup=25, rep=200)
    return 2 * src.numel() * 4 / (ms * 1e-3)


def bench(torch, fn, x, rep, device) -> float:
    """Median seconds per call: do_bench on CUDA (L2 flushed, grad reset), perf_counter on the CPU (smoke)."""
    if device == "cuda":
        from triton.testing import do_bench

        return do_bench(fn, warmup=25, rep=rep, grad_to_none=[x], return_mode="median") * 1e-3
    times = []
    for _ in range(3):
        x.grad = None
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from simlabel_ext import simlabel_loss
    from simlabel_ext.ops import SimLabelOptions, check_errors, simlabel_loss_reference

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; use --smoke for a CPU logic check", file=sys.stderr)
        return 2
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu (smoke)"
    print(f"device: {name}; torch {torch.__version__}")

    failures = check_correctness(torch, simlabel_loss, check_errors, device, shapes)
    print(f"correctness: {'OK' if not failures else f'{len(failures)} FAILED'}")
    for line in failures:
        print("  " + line)

    datasheet = next((bw for key, bw in DATASHEET_BANDWIDTH.items() if key in name), None)
    measured = copy_bandwidth(torch) if device == "cuda" else None
    if measured:
        print(f"copy bandwidth: {measured / 1e9:.0f} GB/s measured" +
              (f", {datasheet / 1e9:.0f} GB/s datasheet" if datasheet else ""))
    options = SimLabelOptions()

    def reference_loss(x, labels, similarity):
        return simlabel_loss_reference(x, labels, similarity, options).loss

    compiled_loss = torch.compile(reference_loss) if device == "cuda" else reference_loss
    print(f"{'B, A, C':>16} {'labels':>7} {'dtype':>9} {'op ms':>8} {'eager ms':>9} {'compiled ms':>11} "
          f"{'x eager':>8} {'x compiled':>10} {'GB/s':>7} {'% copy':>7} {'% datasheet':>11}")
    rows = []
    for B, A, C, density, dtypes in shapes:
        logits, labels, similarity = make_case(torch, B, A, C, density, device)
        for dtype_name in dtypes:
            x = logits.to(getattr(torch, dtype_name)).requires_grad_()

            def op():
                simlabel_loss(x, labels, similarity, options, checks="deferred").loss.backward()

            def eager():
                reference_loss(x, labels, similarity).backward()

            def compiled():
                compiled_loss(x, labels, similarity).backward()

            t_op, t_eager, t_compiled = (bench(torch, fn, x, args.rep, device) for fn in (op, eager, compiled))
            gbps = compulsory_bytes(B, A, C, x.element_size()) / t_op / 1e9
            row = {"shape": [B, A, C], "labels": density, "dtype": dtype_name, "op_ms": t_op * 1e3,
                   "eager_ms": t_eager * 1e3, "compiled_ms": t_compiled * 1e3, "x_eager": t_eager / t_op,
                   "x_compiled": t_compiled / t_op, "gb_per_s": gbps,
                   "pct_copy": 100 * gbps * 1e9 / measured if measured else None,
                   "pct_datasheet": 100 * gbps * 1e9 / datasheet if datasheet else None}
            rows.append(row)
            label = f"{density:g}" + ("/item" if density >= 1 else "")
            print(f"{str((B, A, C)):>16} {label:>7} {dtype_name:>9} {row['op_ms']:8.3f} {row['eager_ms']:9.3f} "
                  f"{row['compiled_ms']:11.3f} {row['x_eager']:8.1f} {row['x_compiled']:10.1f} {gbps:7.0f} "
                  + (f"{row['pct_copy']:6.1f}% " if measured else "    n/a ")
                  + (f"{row['pct_datasheet']:10.1f}%" if datasheet else "        n/a"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"device": name, "torch": torch.__version__, "copy_bandwidth": measured,
                       "datasheet_bandwidth": datasheet, "failures": failures, "rows": rows}, fh, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
