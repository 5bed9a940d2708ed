"""YCSB property files: parsing, CoreWorkload defaults, type checks and the shipped workloads."""

from pathlib import Path

import pytest

from workloads.properties import (
    JAVA_INT_MAX,
    PropertyError,
    WorkloadProperties,
    load_properties,
    parse_properties,
)

WORKLOADS = Path(__file__).resolve().parents[2] / "workloads"

# Spec section 1.1: operation mix, request distribution and extra keys of YCSB's core files.
CORE_WORKLOADS = {
    "a": ({"READ": 0.5, "UPDATE": 0.5}, "zipfian"),
    "b": ({"READ": 0.95, "UPDATE": 0.05}, "zipfian"),
    "c": ({"READ": 1.0}, "zipfian"),
    "d": ({"READ": 0.95, "INSERT": 0.05}, "latest"),
    "e": ({"SCAN": 0.95, "INSERT": 0.05}, "zipfian"),
    "f": ({"READ": 0.5, "READ-MODIFY-WRITE": 0.5}, "zipfian"),
}


def test_parse_skips_comments_and_blank_lines_and_strips_whitespace():
    text = "# comment\n! also a comment\n\n recordcount = 5 \nkeyprefix=us=er\nempty=\n"
    assert parse_properties(text) == {"recordcount": "5", "keyprefix": "us=er", "empty": ""}


def test_parse_rejects_a_line_without_equals_naming_source_and_line():
    with pytest.raises(PropertyError, match=r"wl:2: expected key=value"):
        parse_properties("a=1\nrecordcount 5\n", source="wl")


def test_defaults_are_ycsbs():
    p = WorkloadProperties()
    assert (p.fieldcount, p.fieldlength, p.fieldlengthdistribution) == (10, 100, "constant")
    assert (p.readallfields, p.writeallfields) == (True, False)
    assert p.proportions() == {
        "READ": 0.95,
        "UPDATE": 0.05,
        "INSERT": 0.0,
        "SCAN": 0.0,
        "READ-MODIFY-WRITE": 0.0,
    }
    assert (p.requestdistribution, p.insertorder, p.zeropadding, p.keyprefix) == (
        "uniform",
        "hashed",
        1,
        "user",
    )
    assert (p.minscanlength, p.maxscanlength, p.scanlengthdistribution) == (1, 1000, "uniform")
    assert (p.hotspotdatafraction, p.hotspotopnfraction, p.table) == (0.2, 0.8, "usertable")
    # recordcount 0 means "unbounded": CoreWorkload uses Integer.MAX_VALUE.
    assert p.recordcount == JAVA_INT_MAX and p.insertcount == JAVA_INT_MAX


def test_insertcount_defaults_to_the_records_after_insertstart():
    p = WorkloadProperties.from_mapping({"recordcount": "1000", "insertstart": "300"})
    assert p.insertcount == 700


def test_values_are_typed_and_unknown_keys_kept_as_strings():
    p = WorkloadProperties.from_mapping(
        {
            "recordcount": "10",
            "readallfields": "FALSE",
            "exponential.percentile": "90",
            "as.host": "127.0.0.1",
        }
    )
    assert p.recordcount == 10 and p.readallfields is False and p.exponential_percentile == 90.0
    assert p.extra == {"as.host": "127.0.0.1"}


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("recordcount", "1e3", "recordcount: expected int"),
        ("fieldcount", "0", "fieldcount: 0 is below the minimum 1"),
        ("readproportion", "1.5", "readproportion: 1.5 is above the maximum 1.0"),
        ("readallfields", "yes", "readallfields: expected bool"),
        ("requestdistribution", "gaussian", "requestdistribution: 'gaussian' is not one of"),
        ("insertorder", "random", "insertorder: 'random' is not one of hashed, ordered"),
        ("hotspotopnfraction", "abc", "hotspotopnfraction: expected float"),
        ("fieldlengthdistribution", "histogram", "fieldlengthdistribution: 'histogram' is not one of"),
    ],
)
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(PropertyError, match=message):
        WorkloadProperties.from_mapping({"recordcount": "100", key: value})


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"recordcount": "100", "insertstart": "50", "insertcount": "60"}, "insertcount"),
        ({"minscanlength": "10", "maxscanlength": "5"}, "maxscanlength"),
        ({"readproportion": "0", "updateproportion": "0"}, "readproportion"),
        ({"dataintegrity": "true", "fieldlengthdistribution": "uniform"}, "dataintegrity"),
    ],
)
def test_inconsistent_combinations_are_rejected(raw, key):
    with pytest.raises(PropertyError, match=f"^{key}:"):
        WorkloadProperties.from_mapping(raw)


def test_later_files_and_overrides_win(tmp_path):
    base, more = tmp_path / "base", tmp_path / "more"
    base.write_text("recordcount=100\nfieldcount=5\n")
    more.write_text("fieldcount=7\n")
    p = load_properties(base, more, overrides={"recordcount": "200"})
    assert (p.recordcount, p.fieldcount) == (200, 7)


@pytest.mark.parametrize("name", sorted(CORE_WORKLOADS))
def test_shipped_core_workloads_match_ycsb(name):
    p = load_properties(WORKLOADS / f"workload{name}")
    mix, distribution = CORE_WORKLOADS[name]
    assert {op: share for op, share in p.proportions().items() if share} == mix
    assert p.requestdistribution == distribution
    assert (p.recordcount, p.operationcount, p.readallfields) == (1000, 1000, True)
    assert p.workload == "site.ycsb.workloads.CoreWorkload"
    assert (p.fieldcount, p.fieldlength) == (10, 100)
    assert p.extra == {}
    if name == "e":
        assert (p.maxscanlength, p.scanlengthdistribution) == (100, "uniform")
