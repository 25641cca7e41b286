"""Inputs that grow: for each reader, an input of about ``n`` bytes in the shapes that once made work grow
faster than the input (tests/test_hostile.py checks the growth on small sizes, benchmarks/bench_readers.py
prints it on large ones).
"""

from __future__ import annotations

# Free text: each shape once cost time, memory or evidence quadratic in its length.
TEXT_SHAPES = {
    # one sentence of coordinated findings: the family rule read the clause from its start for every
    # mention, and every evidence row repeated the whole sentence
    "long_sentence": lambda n: "The patient had " + "seizures, ataxia, hypotonia, microcephaly and scoliosis, " * (n // 57),
    # a list of single words: every match scanned the rest of the list for "and"
    "comma_list": lambda n: "The patient had " + "seizures, ataxia, hypotonia, " * (n // 29),
    # a paper whose case description is one line: each mention searched the whole line for cues
    "paper_line": lambda n: (
        "Introduction\nMarfan syndrome is a disorder.\n\nCase report\nThe patient had "
        + "seizures and ataxia, " * (n // 21)
        + "\n\nDiscussion\nNone."
    ),
    # a table row with a long first cell: each mention looked for its line's ends and tabs
    "table_line": lambda n: "Case report\n" + "seizures ataxia hypotonia " * (n // 26) + "\tNo\tNo\n",
    # full stops that do not end a sentence: each one re-read the sentence so far
    "tiny_sentences": lambda n: "Seizures x. y. z. " * (n // 18),
    # an ordinary report, repeated
    "sentences": lambda n: "The patient had seizures and ataxia. She had no hypotonia; her mother had scoliosis. " * (n // 84),
}


def patients_tsv(n_rows: int, terms: int = 1) -> str:
    """A patients table (``case_id, present, absent``) of ``n_rows`` rows of ``terms`` present terms."""
    present = ";".join(["HP:0001250", "HP:0001251", "HP:0001252", "HP:0000252"][:terms] or ["HP:0001250"])
    rows = "".join(f"P{i}\t{present}\tHP:0001263\n" for i in range(n_rows))
    return "case_id\tpresent\tabsent\n" + rows


def cases_tsv(n_rows: int) -> str:
    """A cases table as `rarerank cases` writes it, ``n_rows`` cases."""
    header = "case_id\tcohort\tpmid\tgene\tgene_id\tdisease_id\tpresent\tabsent\tsource\n"
    genes = ("FBN1", "NF1", "PAH", "SCN1A")
    rows = "".join(f"P{i}\tc\tPMID:{i}\t{genes[i % 4]}\t\t\tHP:0001166;HP:0001250\tHP:0001263\tp{i}.json\n" for i in range(n_rows))
    return header + rows
