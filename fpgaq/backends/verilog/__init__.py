"""The Verilog back-end. Here only the names its command line offers before anything of it is
loaded: the RTL simulators and the default number of inputs an RTL simulation runs."""

SIMULATORS = ("icarus", "verilator")
DEFAULT_N = 1000
