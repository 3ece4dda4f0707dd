"""The TSV loader for real corpora: local files, checksums, the download cache, bad lines."""
import hashlib
import shutil
from pathlib import Path

import pytest

from course_utils import tsv
from course_utils.tsv import cache_path, load_tsv_pairs

TSV = Path(__file__).parent / "data" / "tiny_pairs.tsv"


def test_reads_a_local_fixture_and_checks_its_checksum(tmp_path):
    pairs = load_tsv_pairs(TSV)
    assert len(pairs) == 5
    assert pairs[3].src == ("tom", "chased", "jerry", ".")
    assert pairs[0].tgt == ("va", "!")
    digest = hashlib.sha256(TSV.read_bytes()).hexdigest()
    assert len(load_tsv_pairs(TSV, sha256=digest, max_pairs=2)) == 2
    with pytest.raises(ValueError, match="sha256"):
        load_tsv_pairs(TSV, sha256="0" * 64)
    bad = tmp_path / "bad.tsv"
    bad.write_text("no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.tsv:1"):
        load_tsv_pairs(bad)


def test_a_byte_order_mark_is_not_part_of_the_first_token(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffHello there\tBonjour\r\nBye\tSalut\n".encode("utf-8"))
    pairs = load_tsv_pairs(path)
    assert pairs[0].src == ("hello", "there") and pairs[1].tgt == ("salut",)


@pytest.mark.parametrize("line, column", [("\tBonjour", "source"), ("Hello\t", "target"),
                                          ("Hello\t  \t x", "target"), ("...\tBonjour", None)])
def test_an_empty_column_is_named_with_file_and_line(tmp_path, line, column):
    path = tmp_path / "gaps.tsv"
    path.write_text(f"Hi\tSalut\n\n{line}\n", encoding="utf-8")
    if column is None:  # punctuation alone is a token, not an empty column
        assert load_tsv_pairs(path)[1].src == (".", ".", ".")
        return
    with pytest.raises(ValueError, match=rf"gaps.tsv:3: the {column} column is empty"):
        load_tsv_pairs(path)


def test_max_pairs_zero_gives_none_and_negative_is_an_error():
    assert load_tsv_pairs(TSV, max_pairs=0) == []
    assert len(load_tsv_pairs(TSV, max_pairs=1)) == 1
    with pytest.raises(ValueError, match="max_pairs: expected None or an int >= 0, got -1"):
        load_tsv_pairs(TSV, max_pairs=-1)


@pytest.fixture
def fake_download(monkeypatch):
    calls = []

    def retrieve(url, target):
        calls.append(url)
        shutil.copy(TSV, target)

    monkeypatch.setattr(tsv.urllib.request, "urlretrieve", retrieve)
    return calls


def test_urls_are_downloaded_once_and_cached(tmp_path, fake_download):
    url = "https://example.invalid/corpora/tiny_pairs.tsv"
    first = load_tsv_pairs(url, cache_dir=tmp_path)
    second = load_tsv_pairs(url, cache_dir=tmp_path)
    assert first == second and fake_download == [url]
    assert cache_path(url, tmp_path).is_file() and cache_path(url, tmp_path).name.endswith("-tiny_pairs.tsv")


def test_two_corpora_with_the_same_file_name_do_not_collide(tmp_path, fake_download):
    a, b = "https://a.invalid/en-fr/train.tsv", "https://b.invalid/en-de/train.tsv"
    assert cache_path(a, tmp_path) != cache_path(b, tmp_path)
    load_tsv_pairs(a, cache_dir=tmp_path)
    load_tsv_pairs(b, cache_dir=tmp_path)
    assert fake_download == [a, b]


def test_a_corrupt_cached_file_is_downloaded_again(tmp_path, fake_download):
    url = "https://example.invalid/corpora/tiny_pairs.tsv"
    digest = hashlib.sha256(TSV.read_bytes()).hexdigest()
    cached = cache_path(url, tmp_path)
    cached.write_text("half a file", encoding="utf-8")  # e.g. an interrupted copy by hand
    assert len(load_tsv_pairs(url, cache_dir=tmp_path, sha256=digest)) == 5
    assert fake_download == [url] and cached.read_bytes() == TSV.read_bytes()
