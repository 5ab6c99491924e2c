"""The bulk add's list parser: every entry accepted, reported as already wanted, or rejected with why."""

from __future__ import annotations

import pytest

from dashboard.symbol_list import MAX_ENTRIES, UnreadableUpload, parse_symbol_list, upload_text


def test_newlines_commas_semicolons_and_spaces_all_separate_symbols_and_case_is_normalised():
    parsed = parse_symbol_list("aapl\nMSFT, nvda;TSLA\tspy  qqq\r\n")
    assert parsed.accepted == ("AAPL", "MSFT", "NVDA", "TSLA", "SPY", "QQQ")
    assert parsed.rejected == () and parsed.already_wanted == ()


def test_duplicates_are_rejected_naming_the_entry_they_repeat():
    parsed = parse_symbol_list("AAPL msft aapl MSFT")
    assert parsed.accepted == ("AAPL", "MSFT")
    assert [(r.entry, r.reason) for r in parsed.rejected] == [
        ("aapl", "duplicate of entry 1"), ("MSFT", "duplicate of entry 2")]


def test_symbols_already_wanted_are_reported_apart_and_not_accepted_again():
    parsed = parse_symbol_list("AAPL NVDA msft", wanted={"AAPL", "MSFT"})
    assert parsed.accepted == ("NVDA",)
    assert parsed.already_wanted == ("AAPL", "MSFT")


def test_a_symbol_over_the_length_limit_is_rejected_as_too_long():
    parsed = parse_symbol_list("AAPL " + "X" * 31)
    assert parsed.accepted == ("AAPL",)
    (rejected,) = parsed.rejected
    assert rejected.reason == "too long: 31 characters, the limit is 30"


def test_a_symbol_the_feed_validation_refuses_is_rejected_with_its_message():
    parsed = parse_symbol_list("AAPL BAD\x00SYM ÄPPL")
    assert parsed.accepted == ("AAPL",)
    assert [r.entry for r in parsed.rejected] == ["BAD\x00SYM", "ÄPPL"]
    assert all(r.reason.startswith("invalid symbol: ") and "printable ASCII" in r.reason for r in parsed.rejected)


def test_an_empty_list_is_empty():
    assert parse_symbol_list(" \n ,, ").empty


def test_entries_beyond_the_list_limit_are_one_counted_rejection():
    parsed = parse_symbol_list(" ".join(f"S{i}" for i in range(MAX_ENTRIES + 5)))
    assert len(parsed.accepted) == MAX_ENTRIES
    (rejected,) = parsed.rejected
    assert rejected.entry == "5 more entries" and "split it" in rejected.reason


def test_a_csv_with_a_symbol_column_gives_that_column_only():
    data = b"\xef\xbb\xbfName,Symbol,Price\nApple,AAPL,190.1\nNvidia,nvda,120\nshort row\n"
    assert parse_symbol_list(upload_text("portfolio.CSV", data)).accepted == ("AAPL", "NVDA")


def test_a_text_upload_or_a_csv_without_a_symbol_column_is_taken_whole():
    assert parse_symbol_list(upload_text("list.txt", b"AAPL\nMSFT\n")).accepted == ("AAPL", "MSFT")
    assert parse_symbol_list(upload_text("plain.csv", b"AAPL,MSFT\nNVDA\n")).accepted == ("AAPL", "MSFT", "NVDA")


def test_a_binary_upload_is_a_clear_error():
    with pytest.raises(UnreadableUpload, match="not UTF-8 text.*upload a .txt or .csv"):
        upload_text("x.xlsx", b"PK\x03\x04\xff\xfe")
