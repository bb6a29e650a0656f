"""fpgaq compress: sensitivity-aware mixed precision and pruning of float models, priced on the
FPGA with fpgaq's own estimate and measured with its bit-exact emulator (see run.py)."""
from .run import compress
from .report import markdown, write_report

__all__ = ["compress", "markdown", "write_report"]
