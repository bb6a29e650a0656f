"""fpgaq compress: sensitivity-aware mixed precision and pruning of float models, priced on the
FPGA with fpgaq's own estimate and measured with its bit-exact emulator (see run.py)."""
from .run import compress, load_array
from .report import markdown, write_report

__all__ = ["compress", "load_array", "markdown", "write_report"]
