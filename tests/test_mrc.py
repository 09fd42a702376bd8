import gemmi
import mrcfile
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from cryomath.errors import InvalidInputError, MRCFormatError, OutputExistsError
from cryomath.io import ImageStack, read_mrc, read_mrc_header, write_mrc
from tests.conftest import DATA

MRC_FILES = sorted(
    p
    for p in DATA.rglob("*")
    if p.is_file() and any(s in p.name for s in (".mrc", ".map", ".ccp4"))
)


@pytest.mark.parametrize("path", MRC_FILES, ids=[p.name for p in MRC_FILES])
def test_every_mrc_file_in_shared_data_opens(path):
    data, info = read_mrc(path)
    assert data.shape == info.shape and data.dtype == np.float32 and np.isfinite(data).all()
    with mrcfile.open(path, permissive=True) as m:  # same values, whatever the axis order
        assert np.isclose(data.sum(dtype=np.float64), m.data.sum(dtype=np.float64), rtol=1e-6)


def _gemmi_reordered(path):
    m = gemmi.read_ccp4_map(str(path))
    m.setup(float("nan"), gemmi.MapSetup.ReorderOnly)
    return np.array(m.grid, copy=False).transpose(2, 1, 0)  # gemmi: (x, y, z) -> ours (z, y, x)


def test_emd_3001_axis_order_and_anisotropic_voxels():
    path = DATA / "emdb_maps" / "EMD-3001.map"
    data, info = read_mrc(path)
    assert info.axis_order == (3, 1, 2)
    assert info.is_anisotropic
    np.testing.assert_allclose(
        info.voxel_size_angstrom, (17.93 / 40, 4.71 / 12, 33.03 / 72), rtol=1e-6
    )
    assert info.nstart == (-21, -12, 0)
    np.testing.assert_array_equal(data, _gemmi_reordered(path))
    assert any("non-orthogonal" in w for w in info.warnings)  # space group P2_1, beta 94.3


def test_5i55_tiny_axis_order_and_nstart():
    path = DATA / "emdb_maps" / "5i55_tiny.ccp4"
    data, info = read_mrc(path)
    assert info.axis_order == (2, 1, 3)
    assert info.nstart == (-8, 50, 40)  # file order (columns=y, rows=x, sections=z) = (50, -8, 40)
    np.testing.assert_array_equal(data, _gemmi_reordered(path))
    np.testing.assert_allclose(
        info.origin_angstrom, np.multiply(info.nstart, info.voxel_size_angstrom)
    )


@pytest.mark.parametrize("name", ["EMD-3197.map.bz2", "emd_3001.map.gz"])
def test_compressed_files_equal_uncompressed(name):
    plain = DATA / "emdb_maps" / ("EMD-3197.map" if "3197" in name else "EMD-3001.map")
    a, info_a = read_mrc(DATA / "emdb_maps" / name)
    b, info_b = read_mrc(plain)
    np.testing.assert_array_equal(a, b)
    assert info_a.origin_angstrom == info_b.origin_angstrom


def _density_at_atoms(map_path, model_path):
    data, info = read_mrc(map_path)
    structure = gemmi.read_structure(str(model_path))
    xyz = np.array([a.pos.tolist() for r in structure[0].all() for a in [r.atom]])
    index_xyz = (xyz - np.asarray(info.origin_angstrom)) / np.asarray(info.voxel_size_angstrom)
    return map_coordinates(data.astype(np.float64), index_xyz[:, ::-1].T, order=1).mean()


def test_emd_21457_origin_rule_puts_the_model_on_the_same_density():
    folder = DATA / "map_model"
    origin_set = _density_at_atoms(folder / "emd_21457_seg.mrc", folder / "6vyb_Ndom.pdb")
    nstart_set = _density_at_atoms(folder / "emd_21457_seg_nstart.mrc", folder / "6vyb_Ndom.pdb")
    both_zero = _density_at_atoms(
        folder / "emd_21457_seg_orig0.mrc", folder / "6vyb_Ndom_shifted.pdb"
    )
    assert origin_set > 0.1 * read_mrc(folder / "emd_21457_seg.mrc")[0].max()  # really on density
    assert nstart_set == pytest.approx(origin_set, abs=1e-5)
    assert both_zero == pytest.approx(origin_set, abs=1e-5)
    wrong = _density_at_atoms(folder / "emd_21457_seg_orig0.mrc", folder / "6vyb_Ndom.pdb")
    assert abs(wrong - origin_set) > 1e-2  # the test can tell a wrong origin


@pytest.mark.parametrize(
    "dtype,mode", [(np.int8, 0), (np.int16, 1), (np.float32, 2), (np.uint16, 6), (np.float16, 12)]
)
def test_modes_written_by_mrcfile_are_read(tmp_path, dtype, mode):
    values = (np.arange(4 * 5 * 6) % 100).reshape(4, 5, 6).astype(dtype)
    path = tmp_path / "m.mrc"
    with mrcfile.new(path) as m:
        m.set_data(values)
    data, info = read_mrc(path)
    assert info.mode == mode
    np.testing.assert_array_equal(data, values.astype(np.float32))


def test_written_maps_are_valid_mrc2014_and_round_trip(tmp_path):
    volume = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    path = tmp_path / "v.mrc"
    write_mrc(path, volume, (1.5, 1.5, 2.0), origin_angstrom=(10.0, -3.0, 4.5))
    assert mrcfile.validate(str(path), print_file=open("/dev/null", "w"))
    data, info = read_mrc(path)
    np.testing.assert_array_equal(data, volume)
    assert info.voxel_size_angstrom == pytest.approx((1.5, 1.5, 2.0))
    assert info.origin_angstrom == pytest.approx((10.0, -3.0, 4.5))
    with mrcfile.open(path) as m:
        assert m.header.dmax == pytest.approx(volume.max()) and m.header.rms == pytest.approx(
            volume.std(), rel=1e-5
        )
    stack_path = tmp_path / "s.mrcs"
    write_mrc(stack_path, volume, 1.5, is_stack=True)
    assert mrcfile.validate(str(stack_path), print_file=open("/dev/null", "w"))
    assert read_mrc_header(stack_path).is_stack


def test_image_stack_reads_lazily_what_a_full_read_gives():
    path = DATA / "relion313_reference" / "emd3488_relion_ctf_noise_600.mrcs"
    full, _ = read_mrc(path)
    with ImageStack(path) as stack:
        assert len(stack) == 600 and stack.image_shape == (100, 100)
        idx = np.random.default_rng(0).choice(600, 37, replace=False)
        np.testing.assert_array_equal(stack[idx], full[idx])
        np.testing.assert_array_equal(stack[5], full[5])
        with pytest.raises(IndexError):
            stack[600]


def test_bad_mrc_input_gives_clear_errors(tmp_path):
    source = (DATA / "emdb_maps" / "EMD-3197.map").read_bytes()
    truncated = tmp_path / "truncated.mrc"
    truncated.write_bytes(source[: len(source) - 1000])
    text = tmp_path / "text.mrc"
    text.write_text("this is not a map\n" * 100)
    empty = tmp_path / "empty.mrc"
    empty.write_bytes(b"")
    for path in (truncated, text, empty, tmp_path / "missing.mrc"):
        with pytest.raises(MRCFormatError, match=path.name):
            read_mrc(path)
        with pytest.raises(MRCFormatError):
            ImageStack(path)
    out = tmp_path / "out.mrc"
    out.write_text("keep me")
    with pytest.raises(OutputExistsError):
        write_mrc(out, np.zeros((2, 2, 2), np.float32), 1.0)
    assert out.read_text() == "keep me"
    with pytest.raises(InvalidInputError, match="NaN"):
        write_mrc(tmp_path / "nan.mrc", np.full((2, 2, 2), np.nan, np.float32), 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty.mrc",
        "out.mrc",
        "text.mrc",
        "truncated.mrc",
    ]
