import os

# Triton reads TRITON_INTERPRET when it is imported: set it before any test module imports triton so that the
# Triton kernels run in the interpreter on CPU tensors (this machine has no GPU). setdefault keeps an explicit
# TRITON_INTERPRET=0 from the environment (e.g. on a GPU runner).
os.environ.setdefault("TRITON_INTERPRET", "1")
