"""Plain text to blocks by its layout: wrapped lines are one paragraph, lists, code and tables keep
their lines, headings only where the layout sets a line apart; guessed headings of e-mails are text."""

import textwrap

from ingest.plaintext import regroup, text_blocks
from ingest.structure import normalise
from rag.types import Element

PARA = (
    "Every full-time employee gets 27 vacation days per calendar year, accrued monthly. Part-time "
    "employees accrue vacation in proportion to their contracted hours, and up to five unused days carry "
    "over to the next year."
)


def kinds(text: str) -> list[tuple[str, str]]:
    return [(b.kind, b.text) for b in text_blocks(text)]


def test_wrapped_and_unwrapped_paragraphs_give_the_same_blocks():
    unwrapped = f"Vacation\n\n{PARA}\n\n{PARA}\n"
    wrapped = f"Vacation\n\n{textwrap.fill(PARA, 72)}\n\n{textwrap.fill(PARA, 40)}\n"
    padded = "\n".join(line.ljust(72) for line in wrapped.split("\n"))  # MED pads lines with spaces
    expected = [("Title", "Vacation"), ("NarrativeText", PARA), ("NarrativeText", PARA)]
    assert kinds(unwrapped) == kinds(wrapped) == kinds(padded) == expected
    assert kinds(wrapped.replace("\n", "\r\n")) == expected


def test_a_short_line_inside_a_paragraph_is_not_a_heading():
    # A wrapped paragraph whose lines happen to be short: no line is taken for a title.
    text = "The review\nfound that\nmost teams\nwere fine.\n"
    assert kinds(text) == [("NarrativeText", "The review found that most teams were fine.")]


def test_a_heading_directly_above_its_wrapped_text_is_found_by_the_early_line_end():
    body = textwrap.fill(PARA, 72)
    assert kinds(f"Passwords and accounts\n{body}\n\nNext\n{body}\n") == [
        ("Title", "Passwords and accounts"),
        ("NarrativeText", PARA),
        ("Title", "Next"),
        ("NarrativeText", PARA),
    ]
    assert kinds(f"Setext heading\n==============\n\n{body}\n")[0] == ("Title", "Setext heading")


def test_hyphenated_line_ends_are_joined_without_a_space():
    text = "Signalling through the ITAM-\nbearing receptors of the well-\nknown family of immune cells.\n"
    assert kinds(text) == [
        ("NarrativeText", "Signalling through the ITAM-bearing receptors of the well-known family of immune cells.")
    ]


def test_lists_code_and_tables_keep_their_shape():
    text = (
        "Bring the following:\n"
        "- your laptop, fully charged and\n  updated to the latest release\n"
        "- a badge\n\n"
        "    $ rag ingest /srv/shared\n    $ rag check\n\n"
        "```\nfenced line 1\n\nfenced line 3\n```\n\n"
        "Name     Days   Carry-over\n"
        "Alice    27     5\n"
        "Bob      30     0\n"
    )
    blocks = kinds(text)
    assert blocks[:3] == [
        ("NarrativeText", "Bring the following:"),
        ("ListItem", "- your laptop, fully charged and updated to the latest release"),
        ("ListItem", "- a badge"),
    ]
    assert blocks[3] == ("CodeSnippet", "    $ rag ingest /srv/shared\n    $ rag check")
    assert blocks[4] == ("CodeSnippet", "```\nfenced line 1\n\nfenced line 3\n```")
    assert blocks[5][0] == "Table" and blocks[5][1].count("\n") == 2


def test_a_number_at_a_wrapped_line_start_is_not_a_list():
    text = "Patients improved by\n2. 5 points on average and\n- 3 on the other scale.\n"
    assert [k for k, _ in kinds(text)] == ["NarrativeText"]


def test_form_feeds_are_pages():
    blocks = text_blocks(f"{PARA}\f{PARA}\n\f\nLast words here.")
    assert [b.page for b in blocks] == [1, 2, 3]


def test_regroup_gives_one_line_per_paragraph():
    text = f"Hello team,\n{textwrap.fill(PARA, 72)}\n- item one\n- item two\n"
    assert regroup(text).split("\n\n") == ["Hello team,", PARA, "- item one", "- item two"]


def test_email_titles_are_text_and_cut_sentences_in_pdfs_are_joined():
    email = [Element("Regards,", "NarrativeText"), Element("Ann", "Title")]
    assert [e.category for e in normalise(email, ".eml")] == ["NarrativeText", "NarrativeText"]
    pdf = [Element("The results of the trial", "Title", 1), Element("were reported in March.", "NarrativeText", 1)]
    assert normalise(pdf, ".pdf") == [Element("The results of the trial were reported in March.", "NarrativeText", 1)]
    # markup headings are kept, and a heading followed by a lowercase line on another page is not joined
    md = [Element("Vacation", "Title"), Element("days accrue monthly.", "NarrativeText")]
    assert normalise(md, ".md") == md
    pdf_pages = [Element("Heading", "Title", 1), Element("continued text.", "NarrativeText", 2)]
    assert normalise(pdf_pages, ".pdf") == pdf_pages
