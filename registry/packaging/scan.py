"""Read what a pickle (or joblib) file would import, without loading it.

A pickle is a program for a small stack machine; loading it runs the program, and any
``GLOBAL`` it names is imported and may be called (``os.system`` in a ``__reduce__``). This
module walks the opcode stream with ``pickletools.genops`` and keeps a *symbolic* stack —
strings, numbers, tuples, dicts and markers for globals and calls, never real objects — so it
can resolve ``STACK_GLOBAL`` names and understand joblib's NumpyArrayWrapper, whose array bytes
sit raw in the middle of the stream, and skip them. Nothing is imported or called. Compressed
joblib files are decompressed as streams. Memory stays bounded by the symbolic stack, not the
file size (arrays are skipped in chunks).

skops files are zips whose ``schema.json`` names every type the loader would build; the same
allow-list decides on those names (``scan_skops``). Loading passes skops an explicit
trusted-types list: the types skops does not trust by default that the allow-list clears
(recorded in the job result, so approvers see it).

The verdict: *unsafe* if any import is known to run commands, reach the network or evaluate
code; *suspicious* if any import is outside the allow-list of what scikit-learn models need,
or the stream could not be followed to the end; otherwise *safe*.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import pickletools
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Any

CHUNK = 1024 * 1024

DANGEROUS_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "socket", "sys", "shutil", "importlib", "runpy", "pty",
    "ctypes", "multiprocessing", "webbrowser", "http", "urllib", "requests", "httpx",
    "pickle", "_pickle", "marshal", "code", "codeop", "commands", "asyncio", "signal",
    "platform", "tempfile", "glob", "pathlib", "io", "_io", "threading", "ftplib", "smtplib",
    "telnetlib", "xmlrpc", "paramiko", "pydoc", "timeit", "cProfile", "profile", "trace",
    "pdb", "bdb", "dill", "cloudpickle", "torch.hub", "numpy.testing", "operator",
    # Parts of the allowed libraries that read or write files, fetch data or build code.
    "numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.lib.npyio",
    "numpy.lib._npyio_impl", "numpy.lib.format", "numpy.lib._datasource", "sklearn.datasets",
    "sklearn.utils._testing", "sklearn.externals", "scipy.io",
})
# Single callables of the allowed libraries that touch files.
DANGEROUS_QUALIFIED = frozenset(f"numpy.{n}" for n in (
    "load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile",
    "fromregex", "memmap", "DataSource", "tofile"))
DANGEROUS_NAMES = frozenset({
    "eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr",
    "globals", "locals", "vars", "input", "breakpoint", "apply", "execfile", "file",
})
# What scikit-learn estimators and their numpy/scipy state need (module prefixes), and single
# names from elsewhere. Anything else makes a file "suspicious": conversion refuses it unless an
# administrator trusts that artifact.
ALLOWED_MODULES = ("sklearn.", "numpy.", "scipy.sparse.", "scipy.special.", "datetime.")
ALLOWED_NAMES = frozenset({
    "numpy.dtype", "numpy.ndarray", "_codecs.encode", "joblib.numpy_pickle.NumpyArrayWrapper",
    "collections.OrderedDict", "collections.defaultdict", "copyreg._reconstructor",
    "copy_reg._reconstructor",  # protocols 0 and 1 use the Python 2 name
    "decimal.Decimal", *(f"builtins.{n}" for n in (
        "set", "frozenset", "slice", "complex", "bytearray", "object", "range", "list", "dict",
        "tuple", "int", "float", "bool", "str", "bytes")),
    "__builtin__.set", "__builtin__.frozenset", "__builtin__.object"})


@dataclass(frozen=True)
class Global:
    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class Call:
    func: Any
    args: Any
    state: Any = None


class _Mark:
    pass


MARK = _Mark()


@dataclass
class Report:
    imports: list[str] = field(default_factory=list)
    dangerous: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pickles: int = 0
    skipped_array_bytes: int = 0

    @property
    def verdict(self) -> str:
        if self.dangerous:
            return "unsafe"
        if self.unknown or self.problems:
            return "suspicious"
        return "safe"

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "imports": self.imports, "dangerous": self.dangerous,
                "unknown": self.unknown, "problems": self.problems, "pickles": self.pickles,
                "skipped_array_bytes": self.skipped_array_bytes}


def classify(name: str) -> str:
    module, _, attr = name.rpartition(".")
    root = module.split(".")[0]
    if (module in DANGEROUS_MODULES or root in DANGEROUS_MODULES
            or any(module.startswith(f"{m}.") for m in DANGEROUS_MODULES if "." in m)):
        return "dangerous"
    if module in ("builtins", "__builtin__") and attr in DANGEROUS_NAMES:
        return "dangerous"
    if name in DANGEROUS_QUALIFIED:
        return "dangerous"
    if name in ALLOWED_NAMES or name.startswith(ALLOWED_MODULES):
        return "allowed"
    return "unknown"


class _Reader:
    """A forward-only reader over a decompressing source, for streams that cannot seek."""

    def __init__(self, read_raw: Any, decompress: Any) -> None:
        self._read_raw, self._decompress = read_raw, decompress
        self._buffer, self._done = b"", False

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self._buffer) < n) and not self._done:
            raw = self._read_raw(CHUNK)
            if not raw:
                self._buffer += self._decompress.flush() if hasattr(self._decompress,
                                                                    "flush") else b""
                self._done = True
                break
            self._buffer += self._decompress.decompress(raw)
        if n < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def readline(self) -> bytes:
        out = b""
        while not out.endswith(b"\n"):
            byte = self.read(1)
            if not byte:
                break
            out += byte
        return out


class _Peekable:
    """A stream that can tell whether another byte follows without losing it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream, self._pushed = stream, b""

    def at_end(self) -> bool:
        if not self._pushed:
            self._pushed = self._stream.read(1)
        return not self._pushed

    def read(self, n: int = -1) -> bytes:
        head, self._pushed = self._pushed, b""
        if n == 0:
            self._pushed = head
            return b""
        if n < 0:
            return head + self._stream.read()
        return head + self._stream.read(n - len(head)) if n > len(head) else head

    def readline(self) -> bytes:
        head, self._pushed = self._pushed, b""
        if head == b"\n":
            return head
        return head + self._stream.readline()


def open_stream(file: IO[bytes]) -> IO[bytes]:
    """The pickle stream inside a file: as is, or decompressed (joblib's compressors)."""
    head = file.read(6)
    file.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=file, mode="rb")  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(file, mode="rb")  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(file, mode="rb")  # type: ignore[return-value]
    if head[:1] == b"x" and len(head) > 1 and (head[0] * 256 + head[1]) % 31 == 0:
        return _Reader(file.read, zlib.decompressobj())  # type: ignore[return-value]
    return file


def _itemsize(dtype: Any) -> int | None:
    """Bytes per element of a symbolic numpy dtype (numpy.dtype(code, …) plus its state)."""
    if not isinstance(dtype, Call) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    state = dtype.state
    if isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5]
    code = dtype.args[0]
    if not isinstance(code, str) or len(code) > 16:
        return None
    return _code_itemsize(code)


def _code_itemsize(code: str) -> int | None:
    """Bytes per element of a numpy type code like '<f8', 'u1', '?', 'U10' or 'M8[ns]',
    without numpy (the web process and a base install need not have it)."""
    code = code.lstrip("<>|=").split("[", 1)[0]
    if code == "?":
        return 1
    kind, digits = code[:1], code[1:]
    if not digits.isdigit() or kind not in "biufcmMSUV":
        return None
    return int(digits) * (4 if kind == "U" else 1)


def _is_object_dtype(dtype: Any) -> bool:
    return isinstance(dtype, Call) and isinstance(dtype.args, tuple) and bool(dtype.args) and \
        isinstance(dtype.args[0], str) and dtype.args[0].startswith("O")


def _skip(stream: Any, count: int) -> int:
    skipped = 0
    while skipped < count:
        block = stream.read(min(CHUNK, count - skipped))
        if not block:
            break
        skipped += len(block)
    return skipped


class _Machine:
    def __init__(self, stream: _Peekable, report: Report) -> None:
        self.stream, self.report = stream, report

    def _import(self, module: Any, name: Any) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            self.report.problems.append("a global whose name is computed at load time")
            return Global("?", "?")
        found = Global(module, name)
        text = str(found)
        if text not in self.report.imports:
            self.report.imports.append(text)
            kind = classify(text)
            if kind == "dangerous":
                self.report.dangerous.append(text)
            elif kind == "unknown":
                self.report.unknown.append(text)
        return found

    def _after_build(self, obj: Any) -> None:
        """joblib writes each array's bytes straight after its wrapper's BUILD: skip them."""
        if not (isinstance(obj, Call) and isinstance(obj.func, Global)
                and str(obj.func) == "joblib.numpy_pickle.NumpyArrayWrapper"):
            return
        state = obj.state if isinstance(obj.state, dict) else {}
        shape, dtype = state.get("shape"), state.get("dtype")
        if _is_object_dtype(dtype):
            self.run(nested=True)  # object arrays are a nested pickle
            return
        size = _itemsize(dtype)
        if not isinstance(shape, tuple) or not all(isinstance(s, int) for s in shape) or not size:
            raise ValueError("a joblib array whose size cannot be read")
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self.stream.read(1)
            _skip(self.stream, padding[0] if padding else 0)
        count = 1
        for dim in shape:
            count *= dim
        self.report.skipped_array_bytes += _skip(self.stream, count * size)

    def run(self, nested: bool = False) -> bool:
        """Walk one pickle to its STOP. False at the end of the stream."""
        if self.stream.at_end():
            if nested:
                raise ValueError("the stream ends inside a nested pickle")
            return False
        stack: list[Any] = []
        memo: dict[Any, Any] = {}

        def pop_mark() -> list[Any]:
            items = []
            while stack:
                item = stack.pop()
                if item is MARK:
                    return list(reversed(items))
                items.append(item)
            raise ValueError("MARK missing")

        for opcode, arg, _ in pickletools.genops(self.stream):
            name = opcode.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                self.report.pickles += 1
                return True
            if name == "MARK":
                stack.append(MARK)
            elif name == "GLOBAL" or name == "INST":
                module, _, attr = str(arg).partition(" ")
                found = self._import(module, attr)
                if name == "INST":
                    stack.append(Call(found, tuple(pop_mark())))
                else:
                    stack.append(found)
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                stack.append(self._import(module, attr))
            elif name in ("REDUCE", "NEWOBJ"):
                args, func = stack.pop(), stack.pop()
                stack.append(Call(func, args))
            elif name == "NEWOBJ_EX":
                _, args, cls = stack.pop(), stack.pop(), stack.pop()
                stack.append(Call(cls, args))
            elif name == "OBJ":
                items = pop_mark()
                stack.append(Call(items[0] if items else None, tuple(items[1:])))
            elif name == "BUILD":
                state = stack.pop()
                if stack and isinstance(stack[-1], Call):
                    stack[-1].state = state
                    self._after_build(stack[-1])
            elif name in ("MEMOIZE",):
                memo[len(memo)] = stack[-1]
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(arg))
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = stack[-n:]
                del stack[-n:]
                stack.append(tuple(items))
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name in ("EMPTY_LIST",):
                stack.append([])
            elif name == "LIST":
                stack.append(pop_mark())
            elif name in ("EMPTY_DICT",):
                stack.append({})
            elif name == "DICT":
                items = pop_mark()
                stack.append({_key(k): v for k, v in zip(items[::2], items[1::2], strict=False)})
            elif name in ("EMPTY_SET",):
                stack.append(set())
            elif name == "FROZENSET":
                stack.append(frozenset(_key(i) for i in pop_mark()))
            elif name == "APPEND":
                value = stack.pop()
                if isinstance(stack[-1], list):
                    stack[-1].append(value)
            elif name == "APPENDS":
                items = pop_mark()
                if isinstance(stack[-1], list):
                    stack[-1].extend(items)
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                if isinstance(stack[-1], dict):
                    stack[-1][_key(key)] = value
            elif name == "SETITEMS":
                items = pop_mark()
                if isinstance(stack[-1], dict):
                    stack[-1].update({_key(k): v for k, v in zip(items[::2], items[1::2],
                                                                   strict=False)})
            elif name == "ADDITEMS":
                pop_mark()
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER",
                          "READONLY_BUFFER"):
                self.report.problems.append(f"opcode {name} (objects from outside the file)")
                if name == "BINPERSID":
                    stack.pop()
                stack.append(None)
            elif name in ("NONE",):
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            else:  # every argument-carrying push: numbers, strings, bytes
                stack.append(arg)
        raise ValueError("the stream ends before the pickle's STOP")


def _key(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)[:100]


def scan(file: IO[bytes]) -> Report:
    """Scan every pickle in the file, one after another, to the end of the stream."""
    report = Report()
    machine = _Machine(_Peekable(open_stream(file)), report)
    try:
        while machine.run():
            pass
    except (ValueError, IndexError, EOFError, OSError, zlib.error, lzma.LZMAError,
            KeyError) as exc:
        report.problems.append(f"the stream could not be followed: {exc}"[:300])
    if report.pickles == 0 and not report.problems:
        report.problems.append("no pickle found")
    return report



# skops node kinds that name a callable or a type rather than an object to build.
_SKOPS_REFERENCES = ("FunctionNode", "TypeNode", "MethodNode", "OperatorFuncNode")
SKOPS_SCHEMA_LIMIT = 64 * 1024 * 1024
# The types skops itself builds without being told to trust them.
SKOPS_DEFAULT_TRUSTED = frozenset({
    *(f"builtins.{n}" for n in ("dict", "list", "set", "tuple", "str", "int", "float", "bool",
                                "bytes", "bytearray", "complex", "NoneType", "slice", "frozenset",
                                "type")),
    "numpy.ndarray", "numpy.dtype", "numpy.random.RandomState", "numpy.random.Generator",
})


def _skops_names(node: Any, found: dict[str, None], depth: int = 0) -> None:
    if depth > 500:
        raise ValueError("the schema nests deeper than 500 levels")
    if isinstance(node, dict):
        module, cls = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            found.setdefault(f"{module}.{cls}")
        content = node.get("content")
        if node.get("__loader__") in _SKOPS_REFERENCES and isinstance(content, dict):
            module = content.get("module_path") or content.get("__module__")
            name = content.get("function") or content.get("__class__") or content.get("attr")
            if isinstance(module, str) and isinstance(name, str):
                found.setdefault(f"{module}.{name}")
        for value in node.values():
            if isinstance(value, dict | list):
                _skops_names(value, found, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _skops_names(value, found, depth + 1)


def scan_skops(file: IO[bytes]) -> Report:
    """The types a skops file would build, read from its schema without loading anything."""
    report = Report()
    try:
        with zipfile.ZipFile(file) as archive:
            info = archive.getinfo("schema.json")
            if info.file_size > SKOPS_SCHEMA_LIMIT:
                raise ValueError(f"schema.json is {info.file_size:,} bytes, over the limit")
            schema = json.loads(archive.read(info))
        found: dict[str, None] = {}
        _skops_names(schema, found)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, RecursionError) as exc:
        report.problems.append(f"the skops schema could not be read: {exc}"[:300])
        return report
    report.pickles = 1
    for name in found:
        report.imports.append(name)
        verdict = classify(name)
        if verdict == "dangerous":
            report.dangerous.append(name)
        elif verdict == "unknown" and name not in SKOPS_DEFAULT_TRUSTED:
            report.unknown.append(name)
    return report

