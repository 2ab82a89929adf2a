"""Run a command under seccomp filters built the way systemd builds a unit's.

    python seccomp_sandbox.py SPEC.json -- PROGRAM ARG...

SPEC is ``{"allow": [system call names], "errno": "EPERM", "deny_write_execute": true}``:

- ``allow``: SystemCallFilter= as an allow list; any other system call fails with ``errno``
  (SystemCallErrorNumber=). Names this architecture lacks are skipped, as systemd skips them.
- ``deny_write_execute``: MemoryDenyWriteExecute=yes as systemd 252 builds it: mmap asking for
  write and execute, mprotect or pkey_mprotect asking for execute and shmat with SHM_EXEC fail
  with EPERM.

Each is a filter of its own, as systemd loads them (the kernel takes the strictest answer);
libseccomp sets no_new_privs first, as NoNewPrivileges=yes does. Then PROGRAM is executed.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE = 0x2
PROT_EXEC = 0x4
SHM_EXEC = 0o100000


def scmp_act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class ArgComparison(ctypes.Structure):
    """struct scmp_arg_cmp"""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def masked(arg: int, bits: int) -> ArgComparison:
    """Argument ``arg`` has all of ``bits`` set."""
    return ArgComparison(arg, SCMP_CMP_MASKED_EQ, bits, bits)


Rule = tuple[int, str, list[ArgComparison]]

_lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
_lib.seccomp_init.restype = ctypes.c_void_p
_lib.seccomp_init.argtypes = [ctypes.c_uint32]
_lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
_lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                        ctypes.c_uint, ctypes.POINTER(ArgComparison)]
_lib.seccomp_load.argtypes = [ctypes.c_void_p]
_lib.seccomp_release.argtypes = [ctypes.c_void_p]


def load_filter(default_action: int, rules: list[Rule]) -> None:
    context = _lib.seccomp_init(default_action)
    if not context:
        raise OSError(errno.ENOMEM, "seccomp_init")
    try:
        for action, name, comparisons in rules:
            number = _lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:  # unknown here, or another architecture's system call
                continue
            array = (ArgComparison * len(comparisons))(*comparisons) if comparisons else None
            result = _lib.seccomp_rule_add_array(context, action, number, len(comparisons), array)
            if result < 0:
                raise OSError(-result, f"seccomp_rule_add({name})")
        result = _lib.seccomp_load(context)
        if result < 0:
            raise OSError(-result, "seccomp_load")
    finally:
        _lib.seccomp_release(context)


def deny_write_execute_rules() -> list[Rule]:
    refuse = scmp_act_errno(errno.EPERM)
    return [
        (refuse, "mmap", [masked(2, PROT_WRITE | PROT_EXEC)]),
        (refuse, "mmap2", [masked(2, PROT_WRITE | PROT_EXEC)]),
        (refuse, "mprotect", [masked(2, PROT_EXEC)]),
        (refuse, "pkey_mprotect", [masked(2, PROT_EXEC)]),
        (refuse, "shmat", [masked(2, SHM_EXEC)]),
    ]


def main(argv: list[str]) -> None:
    split = argv.index("--")
    spec = json.loads(Path(argv[1]).read_text())
    program = argv[split + 1:]
    if spec.get("deny_write_execute"):
        load_filter(SCMP_ACT_ALLOW, deny_write_execute_rules())
    refuse = scmp_act_errno(getattr(errno, spec.get("errno", "EPERM")))
    load_filter(refuse, [(SCMP_ACT_ALLOW, name, []) for name in sorted(spec["allow"])])
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv)
