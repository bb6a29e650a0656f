"""fpgaq: pruned, fixed-point-quantized ONNX networks to bit-exact FPGA firmware."""
__version__ = "0.1.0"
