"""The PyTorch program of tests/gpu/workloads.sh, run the same way on the host and in containers.

  torch_check.py matmul --devices N [--iters K]
      CUDA is available with N devices; a bf16 8192x8192 matrix product on cuda:0 matches a
      float64 reference on two 128x128 corners; its throughput is measured with CUDA events
      (K timed products after 3 warm-ups).
  torch_check.py none
      CUDA is not available, and making a CUDA tensor raises an error a user can read (the
      process itself does not crash).

Prints `key: value` lines (the script greps them); exits 0 when every check held, 1 otherwise.
"""

import argparse
import sys
import warnings

N = 8192
CORNER = 128


def relative_error(got, ref):
    """Frobenius norm of the difference over that of the reference (which must not be 0)."""
    scale = ref.norm().item()
    return float("inf") if scale == 0 else (got - ref).norm().item() / scale


def matmul(devices, iters):
    import torch

    print(f"torch: {torch.__version__} cuda: {torch.version.cuda}")
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    print(f"available: {available}")
    print(f"device_count: {count}")
    if not available:
        return 1
    print(f"device: {torch.cuda.get_device_name(0)}")
    generator = torch.Generator(device="cuda").manual_seed(17)
    a = torch.randn(N, N, device="cuda", dtype=torch.bfloat16, generator=generator)
    b = torch.randn(N, N, device="cuda", dtype=torch.bfloat16, generator=generator)
    c = a @ b
    torch.cuda.synchronize()
    # The reference uses the very same (bf16) inputs in float64: what is left is the product's
    # own rounding (bf16 output, ~2e-3), far below what a wrong result gives (~1).
    worst = 0.0
    for rows in (slice(0, CORNER), slice(N - CORNER, N)):
        ref = a[rows].double().cpu() @ b[:, rows].double().cpu()
        worst = max(worst, relative_error(c[rows, rows].double().cpu(), ref))
    right = worst < 1e-2
    print(f"matmul: {'OK' if right else 'WRONG'} n={N} worst_relative_error={worst:.2e}")
    for _ in range(3):
        torch.matmul(a, b, out=c)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        torch.matmul(a, b, out=c)
    end.record()
    end.synchronize()
    seconds = start.elapsed_time(end) / 1000
    print(f"tflops: {2 * N**3 * iters / seconds / 1e12:.1f} iters={iters} seconds={seconds:.4f}")
    if count != devices:
        print(f"device_count: want {devices}")
    return 0 if right and count == devices else 1


def no_gpu():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import torch

        available = torch.cuda.is_available()
    print(f"available: {available}")
    for warning in caught:
        print(f"warning: {str(warning.message).strip().splitlines()[0]}")
    try:
        torch.zeros(1, device="cuda")
    except Exception as error:  # whatever PyTorch raises is what a user sees
        text = str(error).strip().splitlines()
        print(f"cuda error: {type(error).__name__}: {text[0] if text else ''}")
        return 0 if not available else 1
    print("cuda error: none (a CUDA tensor was made)")
    return 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("matmul")
    m.add_argument("--devices", type=int, required=True)
    m.add_argument("--iters", type=int, default=50)
    sub.add_parser("none")
    args = parser.parse_args()
    if args.mode == "matmul":
        return matmul(args.devices, args.iters)
    return no_gpu()


if __name__ == "__main__":
    sys.exit(main())
