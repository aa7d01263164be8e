"""The corpus of bad inputs: one command per case, each with the error code it must end in.

Every case runs through ``causalunlearn.cli.main(argv)`` (``test_corpus.py``); the output must
hold the code, no ``Traceback``, no ``internal-error`` and stay small, and the exit status must
be ``status`` (1 for a refused input, 2 for a usage error found by the argument parser).

``files`` are written into a fresh temporary folder first (bytes, so an encoding is part of the
case); ``{tmp}`` in an argument is that folder, ``{camu}`` the shipped CaMU graph. The cases are
cheap: validation commands, or run/compare settings that are refused before any training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CAMU_TEXT = (ROOT / "graphs" / "camu.yaml").read_bytes()


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        name: The case's id in the test report.
        argv: The command after ``causalunlearn`` (``{tmp}``, ``{camu}`` are filled in).
        code: The error code the output must hold.
        files: File name -> content, written to ``{tmp}`` before running: bytes, or an int for
            a sparse file of that many bytes (large on paper, nothing written).
        status: The expected exit status.
        also: Further text the output must hold (e.g. that the other files were validated).
        needs: ``"chattr"`` when the case needs an immutable folder (skipped where
            ``chattr +i`` does not work).
        xfail: Why the case still fails (its fix lies outside this change), else empty.
    """

    name: str
    argv: tuple[str, ...]
    code: str
    files: dict[str, bytes | int] = field(default_factory=dict)
    status: int = 1
    also: tuple[str, ...] = ()
    needs: str = ""
    xfail: str = ""


def _bomb(levels: int, width: int = 9, key: str = "name") -> bytes:
    """A "billion laughs" graph: ``width ** levels`` strings from a few hundred bytes."""
    lines = ["format: causalunlearn.graph/v1", 'x0: &x0 "lollollollollollollol"']
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * width) + "]")
    lines.append(f"{key}: *x{levels}")
    text = "\n".join(lines) + "\n"
    return ("#" + "-" * max(0, 1022 - len(text)) + "\n" + text).encode()  # a 1 kB file


def _flow_bomb(levels: int = 8, width: int = 9) -> str:
    """A bomb in one flow value (for ``--set``)."""
    parts = ["&a0 [lol, lol, lol]"]
    for i in range(1, levels + 1):
        parts.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


def _npy(values: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, values)
    return buffer.getvalue()


def _nested_mappings(depth: int) -> bytes:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)).encode() + b"  " * depth + b"x\n"


_RUN = ("--no-oracle", "--no-progress", "--out", "{tmp}/out", "--cache-dir", "{tmp}/cache")

CASES: list[Case] = [
    # -- graph files that are not UTF-8 text ------------------------------------------------
    Case("binary", ("validate", "{tmp}/g.yaml"), "binary-file", {"g.yaml": bytes(range(256)) * 4}),
    Case(
        "binary-no-nul",
        ("validate", "{tmp}/g.yaml"),
        "not-utf8",
        {"g.yaml": bytes(range(128, 256)) * 4},
    ),
    Case(
        "utf16-bom",
        ("validate", "{tmp}/g.yaml"),
        "not-utf8",
        {"g.yaml": CAMU_TEXT.decode().encode("utf-16")},
    ),
    Case(
        "utf16le-no-bom",
        ("validate", "{tmp}/g.yaml"),
        "binary-file",
        {"g.yaml": CAMU_TEXT.decode().encode("utf-16-le")},
    ),
    Case(
        "utf32",
        ("validate", "{tmp}/g.yaml"),
        "not-utf8",
        {"g.yaml": CAMU_TEXT.decode().encode("utf-32")},
    ),
    Case(
        "latin1",
        ("validate", "{tmp}/g.yaml"),
        "not-utf8",
        {"g.yaml": CAMU_TEXT.replace(b"name: camu", "name: caf\u00e9".encode("latin-1"))},
        also=("line",),
    ),
    Case("nul-byte", ("validate", "{tmp}/g.yaml"), "binary-file", {"g.yaml": b"name: a\x00b\n"}),
    Case(
        "control-char", ("validate", "{tmp}/g.yaml"), "bad-character", {"g.yaml": b"name: a\x07b\n"}
    ),
    Case(
        "binary-among-files",
        ("validate", "{tmp}/bad.yaml", "{camu}", "{tmp}/latin.yaml"),
        "binary-file",
        {"bad.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "latin.yaml": b"name: \xe9\n"},
        also=("ok   ", "[not-utf8]", "1 of 3 file(s) valid"),
    ),
    Case(
        "extends-binary-base",
        ("validate", "{tmp}/child.yaml"),
        "binary-file",
        {
            "child.yaml": b"format: causalunlearn.graph/v1\nextends: base.yaml\nname: c\n",
            "base.yaml": b"\x00\x01\x02",
        },
    ),
    Case(
        "render-latin1",
        ("render", "{tmp}/g.yaml", "-o", "{tmp}/g.dot"),
        "not-utf8",
        {"g.yaml": b"name: caf\xe9\n"},
    ),
    Case(
        "run-binary-graph",
        ("run", "{tmp}/g.yaml", *_RUN),
        "binary-file",
        {"g.yaml": bytes(range(256))},
    ),
    Case(
        "too-big-file",
        ("validate", "{tmp}/big.yaml"),
        "yaml-too-large",
        {"big.yaml": 9 * 1024 * 1024},  # refused by its size, before reading
    ),
    # -- pathological nesting ------------------------------------------------------------------
    Case("deep-flow-list", ("validate", "{tmp}/g.yaml"), "yaml-too-deep", {"g.yaml": b"[" * 50000}),
    Case(
        "deep-flow-map",
        ("validate", "{tmp}/g.yaml"),
        "yaml-too-deep",
        {"g.yaml": b"a: " + b"{a: " * 5000 + b"1" + b"}" * 5000},
    ),
    Case(
        "deep-block-map",
        ("validate", "{tmp}/g.yaml"),
        "yaml-too-deep",
        {"g.yaml": _nested_mappings(300)},
    ),
    Case(
        "deep-set-value",
        ("render", "{camu}", "-o", "{tmp}/g.dot", "--set", "summary=" + "[" * 3000 + "]" * 3000),
        "yaml-too-deep",
    ),
    # -- alias bombs -----------------------------------------------------------------------------
    Case("bomb-name", ("validate", "{tmp}/g.yaml"), "yaml-too-large", {"g.yaml": _bomb(8)}),
    Case(
        "bomb-nodes",
        ("validate", "{tmp}/g.yaml"),
        "yaml-too-large",
        {"g.yaml": _bomb(8, key="nodes")},
    ),
    Case(
        "bomb-set-value",
        ("render", "{camu}", "-o", "{tmp}/g.dot", "--set", "summary=" + _flow_bomb()),
        "yaml-too-large",
    ),
    Case(
        "huge-integer",
        ("validate", "{tmp}/g.yaml"),
        "yaml-syntax",
        {"g.yaml": b"name: camu\nseed: " + b"9" * 5000 + b"\n"},
    ),
    # -- settings refused by the argument parser ---------------------------------------------------
    Case("device-tpu", ("run", "{camu}", "--device", "tpu", *_RUN), "bad-device", status=2),
    Case("device-cuda-typo", ("compare", "{camu}", "--device", "cuda0"), "bad-device", status=2),
    Case("threads-negative", ("run", "{camu}", "--threads", "-1", *_RUN), "bad-count", status=2),
    Case("threads-zero", ("run", "{camu}", "--threads", "0", *_RUN), "bad-count", status=2),
    Case("threads-word", ("tune", "{camu}", "--threads", "many"), "bad-count", status=2),
    Case(
        "cache-dir-is-file",
        ("run", "{camu}", "--cache-dir", "{tmp}/file", "--out", "{tmp}/out"),
        "bad-cache-dir",
        {"file": b"not a folder\n"},
        status=2,
    ),
    Case(
        "cache-dir-under-file",
        ("run", "{camu}", "--cache-dir", "{tmp}/file/cache", "--out", "{tmp}/out"),
        "bad-cache-dir",
        {"file": b"not a folder\n"},
        status=2,
    ),
    Case(
        "cache-dir-immutable",
        ("run", "{camu}", "--cache-dir", "{tmp}/frozen/cache", "--out", "{tmp}/out"),
        "bad-cache-dir",
        status=2,
        needs="chattr",
    ),
    # -- forget IDs ----------------------------------------------------------------------------
    Case(
        "ids-txt-beyond-int64",
        ("run", "{camu}", "--scenario", "indices:{tmp}/ids.txt", *_RUN),
        "bad-index",
        {"ids.txt": b"3\n99999999999999999999999\n"},
        also=("99999999999999999999999",),
    ),
    Case(
        "ids-json-beyond-int64",
        ("run", "{camu}", "--scenario", "indices:{tmp}/ids.json", *_RUN),
        "bad-index",
        {"ids.json": b"[1, 18446744073709551616]"},
        also=("18446744073709551616",),
    ),
    Case(
        "ids-npy-uint64",
        ("run", "{camu}", "--scenario", "indices:{tmp}/ids.npy", *_RUN),
        "bad-index",
        {"ids.npy": _npy(np.array([2**63 + 5], dtype=np.uint64))},
        also=(str(2**63 + 5),),
    ),
    Case(
        "ids-txt-5000-digits",
        ("run", "{camu}", "--scenario", "indices:{tmp}/ids.txt", *_RUN),
        "bad-index",
        {"ids.txt": b"9" * 5000 + b"\n"},
    ),
    Case(
        "ids-npy-nan",
        ("run", "{camu}", "--scenario", "indices:{tmp}/ids.npy", *_RUN),
        "bad-index",
        {"ids.npy": _npy(np.array([1.0, np.nan]))},
    ),
    # -- graph fields of a wrong type (found by swapping each field of camu.yaml for odd values)
    Case(
        "citation-a-list",
        ("validate", "{tmp}/g.yaml"),
        "wrong-type",
        {"g.yaml": re.sub(rb"citation:\n(  .*\n)+", b"citation: [a, b]\n", CAMU_TEXT)},
    ),
    Case(
        "do-op-a-list",
        ("validate", "{tmp}/g.yaml"),
        "unknown-op",
        {"g.yaml": CAMU_TEXT.replace(b"{op: add_noise,", b"{op: [add_noise],")},
    ),
    Case(
        "sweep-file-latin1",
        ("compare", "--sweep", "{tmp}/sweep.yaml", "--out", "{tmp}/sweep"),
        "not-utf8",
        {"sweep.yaml": b"graphs: [caf\xe9.yaml]\n"},
    ),
    # -- sweep folders -------------------------------------------------------------------------
    Case(
        "sweep-truncated-cell",
        (
            "compare",
            "{camu}",
            "--seeds",
            "0",
            "--out",
            "{tmp}/sweep",
            "--cache-dir",
            "{tmp}/cache",
            "--no-plots",
            "--no-progress",
        ),
        "corrupt-cell",
        {
            "sweep/sweep.json": b'{"format": "causalunlearn.sweep/v1"}',
            "sweep/runs/camu/digits/class-0/seed0.json": b'{"identity": {"graph": "abc',
        },
        also=("seed0.json", "--overwrite"),
    ),
    Case(
        "sweep-cell-not-an-object",
        (
            "compare",
            "{camu}",
            "--seeds",
            "0",
            "--out",
            "{tmp}/sweep",
            "--cache-dir",
            "{tmp}/cache",
            "--no-plots",
            "--no-progress",
        ),
        "corrupt-cell",
        {
            "sweep/sweep.json": b'{"format": "causalunlearn.sweep/v1"}',
            "sweep/runs/camu/digits/class-0/seed0.json": b"[1, 2]",
        },
    ),
]

# -- silently wrong or misleading, issue 12 §4 (graph checks) -----------------------------------
SCRUB_TEXT = (ROOT / "graphs" / "baselines" / "scrub.yaml").read_bytes()
_EXTENDS = b"format: causalunlearn.graph/v1\nname: x\nextends: "

CASES += [
    Case(
        "negative-weight-with-maximise",
        ("validate", "{tmp}/g.yaml"),
        "conflicting-ascent",
        {"g.yaml": SCRUB_TEXT.replace(b"    weight: 16.0\n", b"    weight: -16.0\n", 1)},
        also=("weight: 16, maximise: true",),
    ),
    Case(
        "id-of-100k-characters",
        ("validate", "{tmp}/g.yaml"),
        "id-too-long",
        {"g.yaml": CAMU_TEXT.replace(b"\n  forget:", b"\n  " + b"f" * 100_000 + b":", 1)},
        also=("at most 128",),
    ),
    Case(
        "id-of-200-characters",
        ("validate", "{tmp}/g.yaml"),
        "id-too-long",
        {"g.yaml": CAMU_TEXT.replace(b"\n  forget:", b"\n  " + b"f" * 200 + b":", 1)},
        also=("at most 128",),
    ),
    Case(
        "extends-a-folder",
        ("validate", "{tmp}/g.yaml"),
        "not-a-file",
        {"g.yaml": _EXTENDS + b"sub\n", "sub/keep.txt": b"x"},
        also=("is a folder",),
    ),
    Case(
        "extends-a-device",
        ("validate", "{tmp}/g.yaml"),
        "not-a-file",
        {"g.yaml": _EXTENDS + b"/dev/null\n"},
        also=("not a regular file",),
    ),
]

# -- silently wrong before: settings that would count a run twice or train nothing; output
# folders that are not the toolkit's (refused before any computing, nothing touched) --------


def _nan_checkpoint() -> bytes:
    import io

    import torch

    from causalunlearn.models.zoo import build_model

    net = build_model("mlp", 10, (1, 8, 8), seed=0)
    buffer = io.BytesIO()
    torch.save({k: torch.full_like(v, float("nan")) for k, v in net.state_dict().items()}, buffer)
    return buffer.getvalue()


_COMPARE = ("--no-progress", "--cache-dir", "{tmp}/cache")
CASES += [
    Case("run-seeds-repeated", ("run", "{camu}", "--seeds", "0,0", *_RUN), "duplicate-seeds"),
    Case(
        "compare-seeds-repeated",
        ("compare", "{camu}", "--seeds", "1,2,1", "--out", "{tmp}/sw", *_COMPARE),
        "duplicate-seeds",
    ),
    Case(
        "compare-seeds-with-nested-seeds",
        (
            "compare",
            "{camu}",
            "--seeds",
            "0",
            "--train-seeds",
            "0,1",
            "--out",
            "{tmp}/sw",
            *_COMPARE,
        ),
        "mixed-seeds",
    ),
    Case(
        "compare-train-seeds-repeated",
        ("compare", "{camu}", "--train-seeds", "0,1,0", "--out", "{tmp}/sw", *_COMPARE),
        "duplicate-seeds",
    ),
    Case(
        "compare-split-seeds-empty",
        ("compare", "{camu}", "--split-seeds", ",", "--out", "{tmp}/sw", *_COMPARE),
        "no-seeds",
        status=2,
    ),
    Case(
        "sweep-file-seeds-with-nested-seeds",
        ("compare", "--sweep", "{tmp}/s.yaml", "--out", "{tmp}/sw", *_COMPARE),
        "mixed-seeds",
        {"s.yaml": b"methods: [camu]\nseeds: [0]\nunlearn_seeds: [0, 1]\n"},
    ),
    Case("epochs-original-0", ("run", "{camu}", "--epochs-original", "0", *_RUN), "bad-recipe"),
    Case("epochs-original-neg", ("run", "{camu}", "--epochs-original", "-3", *_RUN), "bad-recipe"),
    Case(
        "checkpoint-of-nan",
        ("run", "{camu}", "--checkpoint", "{tmp}/nan.pt", *_RUN),
        "non-finite-checkpoint",
        {"nan.pt": _nan_checkpoint()},
    ),
    Case(
        "checkpoint-missing",
        ("run", "{camu}", "--checkpoint", "{tmp}/nowhere.pt", *_RUN),
        "missing-checkpoint",
    ),
    Case(
        "out-is-a-users-folder",
        ("run", "{camu}", "--overwrite", *_RUN),
        "out-not-ours",
        {"out/thesis.tex": b"years of work\n"},
    ),
    Case("out-is-a-file", ("run", "{camu}", *_RUN), "out-is-file", {"out": b"a file\n"}),
    Case(
        "compare-into-a-run-folder",
        ("compare", "{camu}", "--out", "{tmp}/out", *_COMPARE),
        "out-is-run",
        {"out/manifest.json": b'{"format": "causalunlearn.run/v1", "status": "finished"}'},
    ),
    Case(
        "ablate-a-method-entry",
        ("ablate", "baselines/ssd", "--out", "{tmp}/ab", *_COMPARE),
        "not-a-graph",
    ),
]
