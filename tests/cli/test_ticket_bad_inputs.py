"""Bad inputs of ``construct``, ``verify`` and ``demo``: one ``error:`` line naming the option, nothing written.

Each case runs the console entry point and asserts: exit code != 0, exactly one line on stderr, starting
with ``error:`` and naming the option (or argument) at fault, no traceback, and the output location (the
ticket directory, the demo's --out, or the ticket being verified) byte-for-byte as it was before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.ticket_helpers import ZOO, run, save_small_ticket, snapshot, write_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A checkpoint, bad spec files, a foreign directory, a plain file and a small ticket, shared by every case."""
    root = tmp_path_factory.mktemp("bad_inputs")
    write_checkpoint(root / "target.safetensors")
    (root / "pickled.pt").write_bytes(b"not a safetensors file")
    (root / "missing_field.json").write_text('{"layers": [{"type": "linear", "in_features": 4}]}')
    (root / "not_json.json").write_text("layers: linear")
    (root / "not_a_spec.json").write_text("[1, 2]")
    (root / "foreign" / "sub").mkdir(parents=True)
    (root / "foreign" / "thesis.txt").write_text("years of work")
    (root / "foreign" / "sub" / "data.csv").write_text("a,b\n1,2\n")
    (root / "victim.npz").write_bytes(b"user data")
    (root / "demo_foreign" / "ticket").mkdir(parents=True)
    (root / "demo_foreign" / "ticket" / "notes.txt").write_text("mine")
    save_small_ticket(root / "ticket")
    return root


def _construct(out: str, *extra: str, ckpt: str = "target.safetensors", zoo: bool = True) -> list[str]:
    return ["construct", out, *(ZOO if zoo else []), "--checkpoint", ckpt, *extra]


GOOD = ("--per-weight-eps", "0.05", "--samples", "6")

# (id, argv with {root} placeholders, the output location to watch, what stderr must name)
CASES = [
    ("construct-eps-and-per-weight-eps", _construct("{root}/new", "--eps", "0.1", *GOOD), "new", "--per-weight-eps"),
    ("construct-solver-foo", _construct("{root}/new", "--solver", "foo", *GOOD), "new", "--solver"),
    ("construct-objective-foo", _construct("{root}/new", "--objective", "fastest", *GOOD), "new", "--objective"),
    ("construct-method-foo", _construct("{root}/new", "--method", "foo", *GOOD), "new", "--method"),
    ("construct-malach-with-solver", _construct("{root}/new", "--method", "malach", "--solver", "exact", *GOOD),
     "new", "--solver"),
    ("construct-malach-with-objective",
     _construct("{root}/new", "--method", "malach", "--objective", "sparsest", *GOOD), "new", "--objective"),
    ("construct-structured-without-block-size",
     _construct("{root}/new", "--method", "structured", "--per-weight-eps", "0.05"), "new",
     "--method structured needs --block-size"),
    ("construct-spec-missing-field",
     _construct("{root}/new", "--spec", "{root}/missing_field.json", *GOOD, zoo=False), "new", "out_features"),
    ("construct-spec-not-json", _construct("{root}/new", "--spec", "{root}/not_json.json", *GOOD, zoo=False),
     "new", "--spec"),
    ("construct-spec-not-a-spec", _construct("{root}/new", "--spec", "{root}/not_a_spec.json", *GOOD, zoo=False),
     "new", "--spec"),
    ("construct-model-and-spec", _construct("{root}/new", "--spec", "{root}/not_a_spec.json", *GOOD), "new",
     "--spec"),
    ("construct-no-checkpoint", ["construct", "{root}/new", *ZOO, *GOOD], "new", "--checkpoint"),
    ("construct-checkpoint-is-a-directory", _construct("{root}/new", *GOOD, ckpt="{root}/foreign"), "new",
     "foreign' is a directory, expected a .safetensors file"),
    ("construct-pickled-checkpoint", _construct("{root}/new", *GOOD, ckpt="{root}/pickled.pt"), "new",
     "--checkpoint"),
    ("construct-distribution-foo", _construct("{root}/new", "--distribution", "cauchy", *GOOD), "new",
     "--distribution"),
    ("construct-overwrite-foreign-directory", _construct("{root}/foreign", "--overwrite", *GOOD), "foreign",
     "did not write"),
    ("construct-foreign-directory", _construct("{root}/foreign", *GOOD), "foreign", "did not write"),
    ("construct-overwrite-plain-file", _construct("{root}/victim.npz", "--overwrite", *GOOD), "victim.npz",
     "victim.npz"),
    ("verify-count-0", ["verify", "{root}/ticket", "--count", "0"], "ticket", "--count"),
    ("verify-count-beyond-int64", ["verify", "{root}/ticket", "--count", str(2 ** 63)], "ticket",
     "--count must be an integer in [1, 9223372036854775807]"),
    ("verify-count-negative", ["verify", "{root}/ticket", "--count", "-5"], "ticket", "--count"),
    ("verify-radius-negative", ["verify", "{root}/ticket", "--radius", "-1"], "ticket", "--radius"),
    ("verify-radius-nan", ["verify", "{root}/ticket", "--radius", "nan"], "ticket", "--radius"),
    ("verify-restarts-0", ["verify", "{root}/ticket", "--restarts", "0"], "ticket", "--restarts"),
    ("verify-steps-negative", ["verify", "{root}/ticket", "--steps", "-1"], "ticket", "--steps"),
    ("verify-data-dir-without-data", ["verify", "{root}/ticket", "--data-dir", "{root}"], "ticket",
     "--data-dir is read only with --data"),
    ("verify-data-that-does-not-fit", ["verify", "{root}/ticket", "--data", "digits"], "ticket", "--data digits"),
    ("demo-hidden-0", ["demo", "--out", "{root}/demo", "--hidden", "0"], "demo", "--hidden"),
    ("demo-hidden-negative", ["demo", "--out", "{root}/demo", "--hidden", "-4"], "demo", "--hidden"),
    ("demo-per-weight-eps-0", ["demo", "--out", "{root}/demo", "--per-weight-eps", "0"], "demo", "--per-weight-eps"),
    ("demo-samples-0", ["demo", "--out", "{root}/demo", "--samples", "0"], "demo", "--samples"),
    ("demo-out-is-a-file", ["demo", "--out", "{root}/victim.npz"], "victim.npz", "--out"),
    ("demo-out-holds-a-foreign-ticket-dir", ["demo", "--out", "{root}/demo_foreign"], "demo_foreign", "--out"),
]


@pytest.mark.parametrize("argv, location, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_and_writes_nothing(files, capsys, monkeypatch, argv, location, names):
    monkeypatch.chdir(files)
    watched = files / location
    before = snapshot(watched)
    code, _, err = run([a.format(root=files) for a in argv], capsys)
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert names in lines[0]
    assert "Traceback" not in err
    assert snapshot(watched) == before
