import numpy as np
import pandas as pd
import pytest
import starfile

from cryomath.errors import StarFormatError
from cryomath.io import read_star, write_star
from tests.conftest import DATA

STAR_FILES = sorted(DATA.rglob("*.star"))


def _assert_blocks_equal(ours, theirs):
    assert len(ours) == len(theirs)
    for (name, a), b in zip(ours.items(), theirs.values(), strict=True):
        if isinstance(a, pd.DataFrame):
            assert list(a.columns) == list(b.columns), name
            for column in a.columns:
                x, y = a[column].to_numpy(), b[column].to_numpy()
                if x.dtype.kind in "if" and y.dtype.kind in "if":
                    np.testing.assert_allclose(x, y, rtol=1e-12)
                else:
                    # starfile reads '' in a numeric column as NaN; cryomath keeps the text
                    text = [["" if str(v) == "nan" else str(v) for v in c] for c in (x, y)]
                    assert text[0] == text[1], (name, column)
        else:
            assert {k: str(v) for k, v in a.items()} == {k: str(v) for k, v in b.items()}, name


@pytest.mark.parametrize("path", STAR_FILES, ids=[p.name for p in STAR_FILES])
def test_every_star_file_parses_like_starfile_and_round_trips(path, tmp_path):
    ours = read_star(path)
    theirs = starfile.read(path, always_dict=True)
    if ours.keys() == theirs.keys() or len(ours) == len(theirs):
        _assert_blocks_equal(ours, theirs)  # starfile (another package) as the oracle
    out = tmp_path / "out.star"
    write_star(out, ours)
    again = read_star(out)
    assert again.keys() == ours.keys()
    for name, block in ours.items():
        if isinstance(block, pd.DataFrame):
            pd.testing.assert_frame_equal(again[name], block, check_dtype=False)
        else:
            assert again[name] == block


def test_postprocess_fsc_table_values():
    blocks = read_star(DATA / "star_files" / "postprocess.star")
    fsc = blocks["fsc"]
    assert blocks["general"]["rlnFinalResolution"] == pytest.approx(16.363636)
    assert fsc["rlnSpectralIndex"].tolist()[:3] == [0, 1, 2]
    assert fsc["rlnFourierShellCorrelationCorrected"].iloc[1] == pytest.approx(0.999943)


@pytest.mark.parametrize(
    "body,line,message",
    [
        ("data_p\n\nloop_\n_rlnA #1\n_rlnB #2\n1 2\n3 4 5\n6 7\n", 7, "3 values for 2 columns"),
        ("data_p\n\nloop_\n_rlnA #1\n_rlnB #2\n1 2\n3\n6 7\n", 7, "1 values for 2 columns"),
        ("garbage here\ndata_p\n", 1, "before the first data_"),
        ('data_p\nloop_\n_rlnA\n_rlnB\n1 "2\n', 5, "No closing quotation"),
        ("data_p\n_rlnA 1 2\n", 2, "expected one value"),
        ("data_p\nloop_\n\n1 2\n", 4, "loop_ without labels"),
    ],
)
def test_malformed_star_names_the_line(tmp_path, body, line, message):
    path = tmp_path / "bad.star"
    path.write_text(body)
    with pytest.raises(StarFormatError, match=rf"bad.star:{line}: .*{message}"):
        read_star(path)


def test_binary_and_empty_files_are_not_star(tmp_path):
    (tmp_path / "bin.star").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.star").write_text("")
    for name in ("bin.star", "empty.star", "missing.star"):
        with pytest.raises(StarFormatError):
            read_star(tmp_path / name)
