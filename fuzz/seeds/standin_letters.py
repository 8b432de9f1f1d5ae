"""Writes letters built by the stand-in EHR (tests/standin/itk3.py) into fuzz/seeds/letter/,
as seeds of the letter readers' property tests and fuzz targets: every kind, JSON and FHIR
XML, urn:uuid and relative references, nested and flat, receiver and destination.

    .venv-interop/bin/python fuzz/seeds/standin_letters.py

Run once when the stand-in's letters change; the output is committed (a few files, small).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "standin"))
import itk3  # noqa: E402

OUT = os.path.join(HERE, "letter")


def letter(kind, died=False):
    return {
        "kind": kind,
        "patient": {
            "nhs_number": "9990000018", "family": "Example", "given": ["Alice"],
            "name": "Alice Example", "born": "1950-01-01",
            "deceased": "2025-01-07T08:00:00+00:00" if died else None,
            "address": ["19 Test Street", "Testtown", "ZZ99 3AA"],
        },
        "gp_ods": "A81001", "gp_name": "Riverside Surgery",
        "to_ods": "A81001", "to_name": "Riverside Surgery", "to_mailbox": "A81001HC001",
        "sender_ods": "RXX", "sender_name": "Example Hospitals NHS Trust",
        "sender_mailbox": "RXXHC001",
        "encounter_identifiers": [{"system": "urn:lettergate:local-id", "value": "SIM-000001"},
                                  {"system": "https://ehr.standin.invalid/Id/visit",
                                   "value": "V-1"}],
        "period": {"start": "2025-01-06T09:00:00+00:00", "end": "2025-01-06T10:00:00+00:00"},
        "died": died,
        "document_id": "0f0e0d0c-0b0a-4908-8706-050403020100",
        "status": "final",
        "date": "2025-01-07T10:00:00+00:00",
        "sent_at": "2025-01-07T10:15:00+00:00",
        "title": "Letter",
        "summary": "Seen and assessed. Condition stable.",
        "plan": "No action required by the GP.",
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    variants = [
        ("outpatient", itk3.Style(), False),
        ("inpatient", itk3.Style(fmt="xml"), False),
        ("inpatient", itk3.Style(refs="relative"), True),
        ("emergency", itk3.Style(refs="relative", fmt="xml"), False),
        ("mental-health", itk3.Style(layout="flat"), False),
        ("outpatient", itk3.Style(recipient="destination", layout="flat", fmt="xml"), False),
        ("outpatient", itk3.Style(recipient="none", full_urls=False), False),
    ]
    for i, (kind, style, died) in enumerate(variants):
        body, _ = itk3.serialise(itk3.message_bundle(letter(kind, died), style), style)
        name = f"standin-{i}-{kind}-{style.refs}-{style.layout}-{style.recipient}.{style.fmt}"
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(body)
        print(name, len(body))


if __name__ == "__main__":
    main()
