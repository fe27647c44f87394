"""The CSV reader of the Zhang et al. (2015) text-classification releases."""

from __future__ import annotations

import pytest

from otdata.data.csv_release import (
    RELEASES,
    CSVRowError,
    decode_text,
    read_classes,
    read_csv_release,
)


def _write(tmp_path, text: str, name: str = "train.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_quotes_commas_and_one_based_labels(tmp_path):
    path = _write(
        tmp_path,
        '"3","Wall St. Bears Claw Back","Short-sellers, Wall Street\'s ""dwindling band"", are back."\n'
        '"1","Title, with comma","Plain"\n'
        '4,unquoted title,unquoted text\n',
    )
    texts, labels = read_csv_release(path, num_classes=4)
    assert labels == [2, 0, 3]
    assert texts[0] == 'Wall St. Bears Claw Back Short-sellers, Wall Street\'s "dwindling band", are back.'
    assert texts[1] == "Title, with comma Plain"
    assert texts[2] == "unquoted title unquoted text"


def test_escaped_newlines_become_spaces_or_line_breaks(tmp_path):
    path = _write(tmp_path, '"2","Great place!\\nWould go again.\\n\\nFive stars."\n')
    texts, _ = read_csv_release(path, num_classes=2)
    assert texts == ["Great place! Would go again. Five stars."]
    texts, _ = read_csv_release(path, num_classes=2, newline="\n")
    assert texts == ["Great place!\nWould go again.\n\nFive stars."]


def test_two_and_three_column_files(tmp_path):
    two = _write(tmp_path, '"1","bad food"\n"2","good food"\n', "two.csv")
    three = _write(tmp_path, '"1","a","b"\n"2","c","d"\n', "three.csv")
    assert read_csv_release(two, 2, text_fields=1) == (["bad food", "good food"], [0, 1])
    assert read_csv_release(two, 2) == (["bad food", "good food"], [0, 1])  # inferred
    assert read_csv_release(three, 2, text_fields=2) == (["a b", "c d"], [0, 1])
    assert read_csv_release(three, 2, join=" | ") == (["a | b", "c | d"], [0, 1])
    with pytest.raises(CSVRowError, match="expected 2 fields, got 3"):
        read_csv_release(three, 2, text_fields=1)


def test_blank_lines_and_real_line_breaks_inside_quotes(tmp_path):
    path = _write(tmp_path, '"1","multi\nline","x"\n\n"2","y","z"\n')
    texts, labels = read_csv_release(path, 2)
    assert texts == ["multi\nline x", "y z"]
    assert labels == [0, 1]


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ('"2","only two"', "expected 3 fields, got 2"),
        ('"2","a","b","c"', "expected 3 fields, got 4"),
        ('"two","a","b"', "label 'two' is not an integer"),
        ('"0","a","b"', "label 0 is out of range 1..4"),
        ('"5","a","b"', "label 5 is out of range 1..4"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, bad_row, message):
    # the first row spans two physical lines: the bad row starts on line 4
    path = _write(tmp_path, f'"1","a\nb","c"\n"2","d","e"\n{bad_row}\n"3","f","g"\n')
    with pytest.raises(CSVRowError) as info:
        read_csv_release(path, num_classes=4)
    assert info.value.line == 4
    assert str(path) in str(info.value) and "line 4" in str(info.value)
    assert message in str(info.value)


def test_inconsistent_columns_with_inferred_count(tmp_path):
    path = _write(tmp_path, '"1","a"\n"2","b","c"\n')
    with pytest.raises(CSVRowError, match="line 2: expected 2 fields, got 3"):
        read_csv_release(path, 2)


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(CSVRowError, match="no row"):
        read_csv_release(_write(tmp_path, "\n"), 2)


def test_long_fields_are_read(tmp_path):
    long = "word " * 60_000  # 300 KB, above the csv module's default field limit
    texts, _ = read_csv_release(_write(tmp_path, f'"1","{long}"\n'), 2)
    assert len(texts[0]) == len(long.strip())


def test_ag_news_style_decoding():
    raw = "A second\\team of rocketeers competing for the  #36;10 million prize. It #39;s \\$1 billion.\\\\Next"
    assert decode_text(raw, style="ag_news") == (
        "A second team of rocketeers competing for the $10 million prize. It's $1 billion. Next"
    )
    # a lone backslash is a line break there, so "\no" keeps its "n"
    assert decode_text("gave\\no sign", style="ag_news") == "gave no sign"
    assert decode_text("a\\b", newline="\n", style="ag_news") == "a\nb"
    # the standard rule leaves other backslashes alone
    assert decode_text("C:\\path\\nfile") == "C:\\path file"
    with pytest.raises(ValueError):
        decode_text("x", style="unknown")


def test_classes_file(tmp_path):
    path = _write(tmp_path, "World\nSports\n\nBusiness\nSci/Tech\n", "classes.txt")
    assert read_classes(path) == ["World", "Sports", "Business", "Sci/Tech"]
    with pytest.raises(CSVRowError):
        read_classes(_write(tmp_path, "\n", "empty.txt"))


def test_release_table():
    assert RELEASES["ag_news"].url == "https://s3.amazonaws.com/fast-ai-nlp/ag_news_csv.tgz"
    assert RELEASES["yelp_full"].url.endswith("/yelp_review_full_csv.tgz")
    assert len(RELEASES["dbpedia"].class_names) == 14
    assert RELEASES["yelp_polarity"].class_names == ("negative", "positive")
    assert RELEASES["yelp_full"].class_names[0] == "1 star"
    assert [RELEASES[k].text_fields for k in ("ag_news", "dbpedia", "yelp_polarity", "yelp_full")] == [2, 2, 1, 1]
