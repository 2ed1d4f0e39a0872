"""Probe questions for the escalation router (tests/test_routing.py).

Sensitive probes wrap a value in a sentence and append it to a benign SciFact claim, so that
without the value the question would escalate: only the detectors can keep it local. Values come
in many formats and obfuscations. Context probes ask about the fictional confidential and
restricted documents in tests/data/routing.
"""

from __future__ import annotations

ZWSP = "\u200b"


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def spelled(digits: str) -> str:
    words = "zero one two three four five six seven eight nine".split()
    return " ".join(words[int(d)] if d.isdigit() else d for d in digits if not d.isspace())


EMAILS = [
    "jane.doe@example.com",
    "jane.doe [at] example [dot] com",
    "jane.doe(at)example(dot)com",
    "jane dot doe at example dot com",
    fullwidth("jane@example.com"),
    f"jane{ZWSP}.doe@exam{ZWSP}ple.com",
    "j\u0430ne@ex\u0430mple.com",
    "JANE.DOE@EXAMPLE.ORG",
    "j.doe+hr@sub.example.co.uk",
    "jane . doe @ example . com",
    "jane{at}example{dot}com",
    "jane<at>example<dot>com",
    "jane AT example DOT com",
    "mailto:jane@example.com",
    "jane_doe99@mail.example.net",
    "o'brien@example.ie",
]
PHONES = [
    "+1 415-555-0132",
    "(415) 555-0132",
    "415.555.0132",
    "4155550132",
    "+44 20 7946 0958",
    "+49 30 901820",
    "0033 1 42 68 53 00",
    "+33 (0)1 42 68 53 00",
    "phone: 020 7946 0958",
    "call me at 555 0132 88",
    "+1 (212) 555 0199",
    spelled("4155550132"),
    "tel. 07700 900123",
    "+91 98765 43210",
    "+81 3-1234-5678",
    "mobile 0612345678",
]
CARDS = [
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111.1111.1111.1111",
    "4111111111111111",
    "3782 822463 10005",
    fullwidth("5500 0055 5555 5559"),
    spelled("4242424242424242"),
    " ".join("4012888888881881"),
    "5105 1051 0510 5100",
    f"6011{ZWSP}1111{ZWSP}1111{ZWSP}1117",
    "3530-1113-3330-0000",
    "4242 4242 4242 4242",
    "card no. 5555555555554444",
    "4000 0566 5566 5556",
    "2223 0031 2200 3222",
    "36227206271667",
]
IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "DE89370400440532013000",
    "de89 3704 0044 0532 0130 00",
    "GB82 WEST 1234 5698 7654 32",
    "GB82WEST12345698765432",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91ABNA0417164300",
    "ES91 2100 0418 4502 0005 1332",
    "IT60 X054 2811 1010 0000 0123 456",
    "BE68 5390 0754 7034",
    "CH93 0076 2011 6238 5295 7",
    "DE89-3704-0044-0532-0130-00",
]
NATIONAL_IDS = [
    "123-45-6789",
    "123 45 6789",
    "SSN 123456789",
    "social security number 219-09-9999",
    "078-05-1120",
    "my ssn is 123.45.6789",
    "QQ 12 34 56 C",
    "AB123456C",
    "SIN 046 454 286",
    "046-454-286",
    "ssn: 212-67-4401",
    fullwidth("123-45-6789"),
]
IPS = [
    "10.0.0.12",
    "192.168.1.1",
    "172.16.254.3",
    "8.8.8.8",
    "2001:db8::ff00:42:8329",
    "fe80::1ff:fe23:4567:890a",
    "10 . 0 . 0 . 12",
    "10[.]0[.]0[.]12",
    "192.168.0.10:8080",
    "::ffff:192.0.2.128",
]
SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVwXyZ12",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "sk-proj-Xy12Ab34Cd56Ef78Gh90Ij12Kl34",
    "xoxb-123456789012-abcdEFGHijkl",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "sk_live_51HxYzAbCdEfGhIjKlMn",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN RSA PRIVATE KEY-----",
    "password: Hunter2!xyz",
    "postgres://admin:s3cret@db.internal:5432/prod",
    "Authorization: Bearer abcdef123456ghijkl",
    "rag_Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0",
    "api_key=9f8e7d6c5b4a3210fedcba",
    "glpat-AbCdEfGhIjKlMnOpQrSt",
    "Kq3vP9xZr2LmT7wY4nB8cD1fG6hJ0sA5",
    "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a",
    "token: 7Gh3Kd9Lm2Pq",
    "the secret is Zb7!Qm2#Lp",
]
NAMES = [
    "Dr. Alice Smith",
    "Mr Patel",
    "Maria Lopez",
    "John Smith",
    "Ms. Chen",
    "Prof. Wei Zhang",
    "Sarah O'Connor",
    "Emily Johnson",
    "David Kim",
    "Priya Sharma",
    "Mrs. Gupta",
    "Thomas Müller",
]
WRAPPERS = [
    "Please send the summary to {v}.",
    "For context, the reference I was given is {v}.",
]

TERMS = ["Bluebird", "Project Nightjar", "Orion Merger"]
PATTERNS = [r"\bACME-\d{4}\b", r"\bCUST-\d{6}\b"]
TERM_QUESTIONS = [
    "What is the status of Bluebird?",
    "Does the bluebird launch slip?",
    "BLUEBIRD: who owns the budget?",
    "Is Blue-bird on track?",
    "Summarise b l u e b i r d for me.",
    "What did Project Nightjar deliver?",
    "project nightjar risks?",
    "Project-Nightjar milestones",
    "When does the Orion Merger close?",
    "orion merger synergies",
    "Explain ticket ACME-1234.",
    "Is ACME-0042 resolved?",
    "Who owns account CUST-001234?",
    "CUST-987654 renewal date?",
    "Bluebird's timeline and Nightjar",
    f"Blue{ZWSP}bird status",
    "Blu\u0435bird costs",
    fullwidth("Bluebird") + " plan",
    "#bluebird roadmap",
    "Lessons from the Orion  Merger?",
]

# questions answered by the confidential and restricted documents (their best passage is above public)
CONTEXT_QUESTIONS = [
    "How much will list prices increase next fiscal year?",
    "What discount can a sales representative grant without approval?",
    "Who must approve discounts between fifteen and thirty percent?",
    "What will the enterprise tier bundle include?",
    "When do legacy plans stop being sold?",
    "How do we respond if the main competitor cuts prices?",
    "How many regional sales teams will there be after the merger?",
    "How many sales management positions are cut?",
    "What happens to quotas in the sales reorganisation?",
    "Where does channel partner management move to?",
    "When are managers informed about the sales reorganisation?",
    "At what attainment do accelerators start?",
    "How many salary bands do engineers have?",
    "What is the senior engineer salary band?",
    "What is the staff engineer band range?",
    "How large is the annual equity refresh for staff engineers?",
    "What happens when a new hire's offer exceeds an existing engineer's salary?",
    "What minimum raise comes with a promotion to staff engineer?",
    "How much did we offer to acquire Northwind Logistics?",
    "What is the walk-away price for Northwind?",
    "What did due diligence find about Northwind's warehouse leases?",
    "What replaces our dispatch system after the Northwind closing?",
    "Who is on the insider list for the Northwind deal?",
    "Which Northwind warehouses are merged into our regional hub?",
    "How did ransomware get onto the build servers?",
    "When was the build server encryption detected?",
    "What was the root cause of the build server incident?",
    "Which credentials were rotated after the incident?",
    "Did the ransomware incident require notifying regulators?",
    "How were the build servers restored after the ransomware?",
]


def pii_probes(claims: list[str]) -> list[tuple[str, str]]:
    """(category, question) pairs: every value in both wrappers, each after a different claim."""
    probes = []
    groups = [
        ("email", EMAILS),
        ("phone", PHONES),
        ("credit_card", CARDS),
        ("iban", IBANS),
        ("national_id", NATIONAL_IDS),
        ("ip_address", IPS),
        ("secret", SECRETS),
        ("person_name", NAMES),
    ]
    n = 0
    for category, values in groups:
        for value in values:
            for wrapper in WRAPPERS:
                probes.append((category, f"Is it true that {claims[n % len(claims)]} {wrapper.format(v=value)}"))
                n += 1
    return probes
