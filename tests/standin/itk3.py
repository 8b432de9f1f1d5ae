"""ITK3 FHIR STU3 message bundles, built from the specifications (see SOURCES.md).

One letter is a `Bundle` of type `message` (ITK-Message-Bundle-1) whose first entry is an
ITK-MessageHeader-2 and whose payload is a FHIR document: a `Bundle` of type `document`
(ITK-Document-Bundle-1) with the Composition first, then Patient, Practitioner, Organizations
and Encounter. The variants are those the specifications allow; see `Style`.
"""

import json
import uuid

SNOMED = "http://snomed.info/sct"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
RFC4122 = "https://tools.ietf.org/html/rfc4122"
EVENT_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2"
HANDLING = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2"
RECIPIENT_TYPE = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-RecipientType-1"
DISCHARGE_METHOD_EXT = "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-DischargeMethod-1"
DISCHARGE_METHOD = "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-DischargeMethod-1"
PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/"
CC_PROFILE = "https://fhir.hl7.org.uk/STU3/StructureDefinition/"
REST_BASE = "https://ehr.standin.invalid/fhir/"

# kind -> (MESH workflow, ITK3 event code, event display, MessageDefinition, SNOMED document
# type, document type display, Composition profile, Encounter class). Every value is from the
# specifications; SOURCES.md names the file each comes from.
KINDS = {
    "outpatient": (
        "TOC_FHIR_OP_ATTEN", "ITK006D", "ITK Outpatient Letter",
        "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-OPL-MessageDefinition-4",
        "823681000000100", "Outpatient letter", "CareConnect-ITK-OPL-Composition-1", "AMB",
    ),
    "inpatient": (
        "TOC_FHIR_IP_DISCH", "ITK003D", "ITK eDischarge",
        "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-eDischarge-MessageDefinition-4",
        "373942005", "Discharge summary", "CareConnect-ITK-EDIS-Composition-1", "IMP",
    ),
    "mental-health": (
        "TOC_FHIR_MH_DISCH", "ITK004D", "ITK Mental Health eDischarge",
        "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-MH-eDischarge-MessageDefinition-4",
        "373942005", "Discharge summary", "CareConnect-ITK-MH-Composition-1", "IMP",
    ),
    "emergency": (
        "TOC_FHIR_EC_DISCH", "ITK005D", "ITK Emergency Care eDischarge",
        "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-EC-eDischarge-MessageDefinition-4",
        "373942005", "Discharge summary", "CareConnect-ITK-ECD-Composition-1", "EMER",
    ),
}

ACT_CODE = "http://hl7.org/fhir/v3/ActCode"  # STU3's system URI for v3 ActCode


class Style:
    """What the specifications leave to the sender, switchable per run."""

    def __init__(self, refs="urn-uuid", recipient="receiver", layout="nested", fmt="json",
                 full_urls=True):
        self.refs = refs  # "urn-uuid" | "relative"
        self.recipient = recipient  # "receiver" | "destination" | "none"
        self.layout = layout  # "nested" | "flat"
        self.fmt = fmt  # "json" | "xml"
        self.full_urls = full_urls  # False: the "missing entry.fullUrl" fault


class Entries:
    """Resources of one bundle, each with its id, fullUrl and how others refer to it."""

    def __init__(self, style):
        self.style = style
        self.items = []

    def add(self, resource):
        rid = str(uuid.uuid4())
        rest = [(k, v) for k, v in resource.items() if k not in ("resourceType", "id")]
        rtype = resource["resourceType"]
        resource.clear()  # why: resourceType and id first, for people reading the dumps
        resource.update([("resourceType", rtype), ("id", rid)] + rest)
        if self.style.refs == "relative":
            ref = f"{rtype}/{rid}"
            full_url = REST_BASE + ref
        else:
            ref = full_url = f"urn:uuid:{rid}"
        self.items.append((full_url, resource))
        return ref

    def as_entries(self):
        if self.style.full_urls:
            return [{"fullUrl": url, "resource": res} for url, res in self.items]
        return [{"resource": res} for _, res in self.items]


def _narrative(html):
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{html}</div>'}


def _org(ods, name, profile="CareConnect-Organization-1", base=CC_PROFILE):
    return {
        "resourceType": "Organization",
        "meta": {"profile": [base + profile]},
        "identifier": [{"system": ODS, "value": ods}],
        "name": name,
    }


def _section(title, code, display, html, entry_ref=None):
    section = {
        "title": title,
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
        "text": _narrative(html),
    }
    if entry_ref:
        section["entry"] = [{"reference": entry_ref}]
    return section


def document_resources(letter, entries):
    """The document's resources into `entries`; returns the Composition's reference."""
    kind = KINDS[letter["kind"]]
    patient = letter["patient"]
    pat = {
        "resourceType": "Patient",
        "meta": {"profile": [CC_PROFILE + "CareConnect-Patient-1"]},
        "identifier": [{"system": NHS_NUMBER, "value": patient["nhs_number"]}],
        "name": [{"use": "official", "family": patient["family"], "given": patient["given"]}],
        "birthDate": patient["born"],
        "address": [{"use": "home", "line": patient["address"][:-1], "postalCode": patient["address"][-1]}],
    }
    if patient.get("deceased"):
        pat["deceasedDateTime"] = patient["deceased"]
    # why: a document's first entry is its Composition; it is filled in once the others exist
    comp = {"resourceType": "Composition"}
    comp_ref = entries.add(comp)
    pat_ref = entries.add(pat)
    gp_ref = None
    if letter.get("gp_ods"):
        gp_ref = entries.add(_org(letter["gp_ods"], letter["gp_name"]))
        pat["generalPractitioner"] = [{"reference": gp_ref}]
    author_ref = entries.add({
        "resourceType": "Practitioner",
        "meta": {"profile": [CC_PROFILE + "CareConnect-Practitioner-1"]},
        "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "C1234567"}],
        "name": [{"family": "Consultant", "given": ["Clara"], "prefix": ["Dr"]}],
    })
    custodian_ref = entries.add(_org(letter["sender_ods"], letter["sender_name"]))
    enc = {
        "resourceType": "Encounter",
        "meta": {"profile": [PROFILE + "CareConnect-ITK-Encounter-1"]},
        "identifier": letter["encounter_identifiers"],
        "status": "finished",
        "class": {"system": ACT_CODE, "code": kind[7]},
        "subject": {"reference": pat_ref},
        "period": letter["period"],
        "serviceProvider": {"reference": custodian_ref},
    }
    if letter.get("died"):
        enc["hospitalization"] = {"extension": [{
            "url": DISCHARGE_METHOD_EXT,
            "valueCodeableConcept": {"coding": [
                {"system": DISCHARGE_METHOD, "code": "4", "display": "Patient died"}]},
        }]}
    enc_ref = entries.add(enc)
    sections = [
        _section("Patient demographics", "886731000000109", "Patient demographics",
                 f"<p>{patient['name']}, NHS number {patient['nhs_number']}, born {patient['born']}</p>",
                 pat_ref),
        _section("Clinical summary", "887181000000106", "Clinical summary",
                 f"<p>{letter['summary']}</p>", enc_ref),
        _section("Plan and requested actions", "887201000000105", "Plan and requested actions",
                 f"<p>{letter['plan']}</p>"),
    ]
    if gp_ref:
        sections.insert(1, _section("GP practice", "886711000000101", "GP practice",
                                    f"<p>{letter['gp_name']} ({letter['gp_ods']})</p>", gp_ref))
    comp.update({
        "meta": {"profile": [PROFILE + kind[6]]},
        "identifier": {"system": RFC4122, "value": letter["document_id"]},
        "status": letter["status"],
        "type": {"coding": [{"system": SNOMED, "code": kind[4], "display": kind[5]}]},
        "subject": {"reference": pat_ref},
        "encounter": {"reference": enc_ref},
        "date": letter["date"],
        "author": [{"reference": author_ref}],
        "title": letter["title"],
        "custodian": {"reference": custodian_ref},
        "section": sections,
    })
    return comp_ref


def message_bundle(letter, style):
    """The ITK3 message bundle for one letter, as a dict (JSON shape)."""
    kind = KINDS[letter["kind"]]
    outer = Entries(style)
    header = {
        "resourceType": "MessageHeader",
        "meta": {"profile": [PROFILE + "ITK-MessageHeader-2"]},
        "extension": [{
            "url": HANDLING,
            "extension": [
                {"url": "BusAckRequested", "valueBoolean": True},
                {"url": "InfAckRequested", "valueBoolean": True},
                {"url": "RecipientType", "valueCoding": {
                    "system": RECIPIENT_TYPE, "code": "FA", "display": "For Action"}},
                {"url": "MessageDefinition", "valueReference": {"reference": kind[3]}},
                {"url": "SenderReference", "valueString": "None"},
                {"url": "LocalExtension", "valueString": "None"},
            ],
        }],
        "event": {"system": EVENT_SYSTEM, "code": kind[1], "display": kind[2]},
        "timestamp": letter["sent_at"],
        "source": {"endpoint": letter["sender_mailbox"]},
    }
    outer.add(header)
    sender_ref = outer.add(_org(letter["sender_ods"], letter["sender_name"],
                                "CareConnect-ITK-Header-Organization-1", PROFILE))
    header["sender"] = {"reference": sender_ref}
    if style.recipient == "receiver":
        header["receiver"] = {"reference": outer.add(_org(
            letter["to_ods"], letter["to_name"], "CareConnect-ITK-Header-Organization-1", PROFILE))}
    elif style.recipient == "destination":
        header["destination"] = [{"name": letter["to_name"], "endpoint": letter["to_mailbox"]}]
    if style.layout == "flat":
        header["focus"] = [{"reference": document_resources(letter, outer)}]
    else:
        inner = Entries(style)
        document_resources(letter, inner)
        doc = {
            "resourceType": "Bundle",
            "meta": {"profile": [PROFILE + "ITK-Document-Bundle-1"]},
            "identifier": {"system": RFC4122, "value": str(uuid.uuid4())},
            "type": "document",
            "entry": inner.as_entries(),
        }
        header["focus"] = [{"reference": outer.add(doc)}]
    # why: the header must stay first whatever `add` order the references needed
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PROFILE + "ITK-Message-Bundle-1"]},
        "identifier": {"system": RFC4122, "value": str(uuid.uuid4())},
        "type": "message",
        "entry": outer.as_entries(),
    }


def serialise(bundle, style):
    """(body bytes, MIME type). Validated as STU3 by fhir.resources either way."""
    from fhir.resources.STU3.bundle import Bundle  # why: import cost only when a letter is sent

    model = Bundle.model_validate(bundle)
    if style.fmt == "xml":
        xml = model.model_dump_xml(pretty_print=True)
        return (xml if isinstance(xml, bytes) else xml.encode()), "application/fhir+xml"
    return json.dumps(bundle, indent=2).encode(), "application/fhir+json"
