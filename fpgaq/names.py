"""Identifiers for generated code. No raw ONNX string ever becomes one."""
from __future__ import annotations

import re

_CPP_AND_VERILOG_KEYWORDS = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
co_return co_yield decltype default delete do double dynamic_cast else enum explicit export
extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq
nullptr operator or or_eq private protected public register reinterpret_cast requires return
short signed sizeof static static_assert static_cast struct switch template this thread_local
throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t while
xor xor_eq main
always assign automatic begin buf casex casez cell config deassign defparam design disable edge
end endcase endconfig endfunction endgenerate endmodule endprimitive endspecify endtable endtask
event force forever fork function generate genvar highz0 highz1 ifnone incdir include initial
inout input instance integer join large liblist library localparam macromodule medium module
nand negedge nmos nor noshowcancelled notif0 notif1 output parameter pmos posedge primitive
pull0 pull1 pulldown pullup reg release repeat rcmos real realtime rnmos rpmos rtran rtranif0
rtranif1 scalared showcancelled small specify specparam strong0 strong1 supply0 supply1 table
task time tran tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait
wand weak0 weak1 wire wor xnor
""".split())


def is_reserved(name: str) -> bool:
    """A C++ or Verilog keyword, or a prefix the ap_types headers own."""
    return name.lower() in _CPP_AND_VERILOG_KEYWORDS or name.startswith("ap_") or name == "fpgaq"


def identifier(text: str, taken: set[str], fallback: str = "n") -> str:
    """A safe, unique C++/Verilog identifier derived from `text`; adds it to `taken`."""
    base = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:32].lower() or fallback
    if base[0].isdigit() or is_reserved(base):
        base = f"{fallback}_{base}"
    name, k = base, 1
    while name in taken:
        name = f"{base}_{k}"
        k += 1
    taken.add(name)
    return name


def comment(text: str) -> str:
    """`text` made safe to place inside a C++ // comment or a Verilog // comment."""
    return "".join(c if c.isprintable() and c not in "\\" else "?" for c in text)[:120]
