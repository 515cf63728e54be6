"""The hard-link folders that give cold scenarios distinct names."""

from corpus import _link_names
from PIL import Image


def make_bases(directory, count):
    directory.mkdir(exist_ok=True)
    bases = []
    for index in range(count):
        path = directory / f"b{index}.jpg"
        Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(path)
        bases.append(path)
    return bases


class TestLinks:
    """Links cycle over the bases and follow a rebuilt base."""

    def test_links_cycle_over_bases(self, tmp_path):
        bases = make_bases(tmp_path / "base", 2)
        _link_names(tmp_path / "names", bases, 5)
        inodes = [(tmp_path / "names" / f"p{n:05d}.jpg").stat().st_ino for n in range(5)]
        assert inodes == [bases[n % 2].stat().st_ino for n in range(5)]

    def test_rebuilt_base_is_relinked(self, tmp_path):
        bases = make_bases(tmp_path / "base", 1)
        _link_names(tmp_path / "names", bases, 2)
        bases[0].unlink()
        make_bases(tmp_path / "base", 1)
        _link_names(tmp_path / "names", bases, 2)
        assert (tmp_path / "names" / "p00001.jpg").stat().st_ino == bases[0].stat().st_ino
