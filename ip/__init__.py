"""Hand-written Verilog primitives and integration wrappers (package data of fpgaq)."""
