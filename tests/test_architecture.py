"""The layers of docs/architecture.md hold: every module of cryomath imports only from its own
layer or below (io, devices and errors from anywhere), and no module imports another package's
private name."""

import ast
from pathlib import Path

import cryomath

SOURCE = Path(cryomath.__file__).parent
# docs/architecture.md, bottom to top
LAYERS = {
    "errors": 0, "devices": 0, "so3": 1, "fourier": 1, "io": 1.5,
    "projection": 2, "ctf": 2, "noise": 2, "atoms": 2,
    "imaging": 3,
    "reconstruction": 4, "resolution": 4, "fitting": 4, "simulate": 4, "inference": 4,
    "denoising": 4, "motion": 4, "heterogeneity": 4,
    "pipelines": 5, "plots": 5,
    "cli": 6, "demo": 6,
}  # fmt: skip
BESIDE = {"io", "devices", "errors"}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cryomath"):
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cryomath"):
                    yield alias.name, []


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_has_a_layer():
    modules = [p for p in SOURCE.iterdir() if p.suffix == ".py" and p.name != "__init__.py"]
    packages = [p for p in SOURCE.iterdir() if (p / "__init__.py").exists()]
    packages = {p.stem for p in modules} | {p.name for p in packages}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_imports_point_downward_and_never_at_private_names():
    upward, private = [], []
    for path in SOURCE.rglob("*.py"):
        own = path.relative_to(SOURCE).parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        for module, names in _imports(path):
            target = _package(module)
            if target is None or target == own:
                continue
            if target not in BESIDE and LAYERS[target] > LAYERS[own]:
                upward.append(f"{path.relative_to(SOURCE)} imports {module}")
            private += [f"{path.relative_to(SOURCE)}: {module}.{n}" for n in names
                        if n.startswith("_")]  # fmt: skip
    assert not upward, upward
    assert not private, private


def _cli_options() -> dict[str, list[str]]:
    """Every command's option names: ``{"align-maps": ["--out", ...]}``."""
    import typer

    from cryomath.cli import app

    found = {}

    def walk(command, name):
        for sub, child in getattr(command, "commands", {}).items():
            walk(child, f"{name} {sub}".strip())
        if not hasattr(command, "commands"):
            found[name] = [o for p in command.params if p.param_type_name == "option"
                           for o in p.opts]  # fmt: skip

    walk(typer.main.get_command(app), "")
    return found


def test_one_spelling_per_quantity_on_the_command_line():
    """Sizes are ``--pixel-size`` (Angstrom), ``--box-size`` (pixels) and ``--grid-spacing``
    (Angstrom); a point group is ``--symmetry`` (RELION's ``--sym`` as its alias) everywhere."""
    options = _cli_options()
    spelled = {o for names in options.values() for o in names}
    assert not {o for o in spelled if any(w in o for w in ("voxel", "apix", "angpix", "psize"))}
    assert {o for o in spelled if "box" in o} == {"--box-size"}
    assert {o for o in spelled if "pixel" in o} == {"--pixel-size"}
    with_symmetry = {c for c, names in options.items() if "--symmetry" in names}
    assert with_symmetry == {c for c, names in options.items() if "--sym" in names}
    assert {"reconstruct", "align-maps", "rotations grid", "rotations expand"} <= with_symmetry
