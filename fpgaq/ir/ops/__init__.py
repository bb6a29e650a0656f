"""The IR's ops, each a frozen dataclass holding its own rules (see base.py)."""
from .base import Args, Op
from .channel_quant import ChannelQuant
from .conv import Conv, MaxPool
from .divide import Average, DivQuant
from .elementwise import Clip, LeakyRelu, Relu
from .arith import Add, Div, Mul, Sub
from .linear import BatchNorm, Dense, Gemm, MatMul
from .quantizers import Bipolar, Quant, Requant, Scale
from .shape import Concat, Reshape, Transpose
from .source import Constant, Input
from .tables import Activation, Argmax, Lut, Softmax, SoftmaxTable
from .threshold import Threshold
from .windows import Windows

__all__ = ["Args", "Op", "Input", "Constant", "Quant", "Bipolar", "Requant", "Scale", "Gemm", "MatMul",
           "Add", "Sub", "Mul", "Div", "BatchNorm", "Dense", "Relu", "Clip", "Reshape", "Transpose",
           "Threshold", "ChannelQuant", "Conv", "MaxPool", "Concat", "Average", "DivQuant", "LeakyRelu", "Activation", "Softmax", "Lut", "SoftmaxTable", "Argmax",
           "Windows"]
