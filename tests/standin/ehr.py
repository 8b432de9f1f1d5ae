#!/usr/bin/env python3
"""A small staging-EHR stand-in, written from the NHS specifications and lettergate's README.

It takes clinical events as FHIR R4 (patients, encounters, compositions: the requests of
lettergate's default FHIR driver), answers as a FHIR server does, and sends the letters a
hospital EHR would: ITK3 FHIR STU3 message bundles over MESH to the patient's practice, a
patient copy to a print service in the service's own JSON shape, and the ITK3 discharge
summary that tells the practice of a death. It collects its MESH inbox (the ITK3
acknowledgements) as a real sender must. See README.md for flags, variants and faults.

Bound to 127.0.0.1 only.
"""

import argparse
import http.server
import json
import os
import queue
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import itk3  # noqa: E402
from directory import Directory  # noqa: E402
from mesh import MeshClient, check_test_vector  # noqa: E402

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
LOCAL_ID = "urn:lettergate:local-id"

FAULTS = {
    "silent-practice": "ODS: no letters at all for this practice",
    "previous-practice": "letters go to the patient's previous practice (before a change of GP)",
    "duplicate": "every MESH letter is sent twice",
    "stop-kind": "KIND: never send this kind (outpatient, inpatient, emergency, death, patient-copy)",
    "preliminary": "letters are sent with Composition.status preliminary",
    "dated-when-sent": "the letter's dates (Composition.date, Encounter.period) are the time of sending",
    "copy-after-death": "the patient's copy is posted to their home even after they died",
    "no-fullurl": "bundle entries carry no fullUrl",
}


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg):
    print(f"[standin {now_iso()}] {msg}", file=sys.stderr, flush=True)


class Patient:
    def __init__(self, nhs_number):
        self.nhs_number = nhs_number
        self.family = "Unknown"
        self.given = ["Unknown"]
        self.born = "1900-01-01"
        self.gp_ods = None
        self.previous_ods = None
        self.deceased = None
        self.resource = None

    def as_letter_patient(self):
        # why: lettergate sends no address; a print service needs one, so the EHR holds a
        # synthetic one per patient
        return {
            "nhs_number": self.nhs_number,
            "family": self.family,
            "given": self.given,
            "name": " ".join(self.given + [self.family]),
            "born": self.born,
            "deceased": self.deceased,
            "address": [f"{int(self.nhs_number[-3:]) + 1} Test Street", "Testtown", "ZZ99 3AA"],
        }


class Visit:
    """An encounter the EHR keeps; outpatient visits carry the clinic letter's state."""

    def __init__(self, resource, nhs_number):
        self.resource = resource
        self.nhs_number = nhs_number
        self.cls = resource.get("class", {}).get("code")
        self.identifiers = [
            {"system": i.get("system"), "value": i.get("value")}
            for i in resource.get("identifier", []) if i.get("value")
        ]
        self.period = dict(resource.get("period", {}))
        self.second_signer = any(
            c.get("code") == "SPRF"
            for p in resource.get("participant", []) for t in p.get("type", [])
            for c in t.get("coding", [])
        )
        self.open = resource.get("status") != "finished"
        self.letter_sent = False
        self.signatures = 0
        self.signed_at = None


class Ehr:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.patients = {}
        self.visits = []
        self.directory = Directory()
        for path in args.directory:
            self.directory.load(path)
        self.faults = {}
        for fault in args.fault:
            name, _, value = fault.partition("=")
            if name not in FAULTS:
                raise SystemExit(f"unknown fault {name}; known: {', '.join(FAULTS)}")
            self.faults.setdefault(name, set()).add(value)
        self.style = itk3.Style(args.refs, args.recipient, args.layout, args.format,
                                full_urls="no-fullurl" not in self.faults)
        self.mesh = MeshClient(args.mesh_url, args.mailbox,
                               os.environ.get("STANDIN_MESH_PASSWORD", "password"),
                               os.environ.get("STANDIN_MESH_SHARED_KEY", "TestKey"))
        self.outbox = queue.Queue()
        self.counter = 0
        self.sent = []
        self.acks = []

    # ---- events ---------------------------------------------------------------------------

    def put_patient(self, resource):
        nhs = next((i["value"] for i in resource.get("identifier", [])
                    if i.get("system") == NHS_NUMBER), None)
        if not nhs:
            raise ValueError("Patient has no NHS number identifier")
        with self.lock:
            created = nhs not in self.patients
            patient = self.patients.setdefault(nhs, Patient(nhs))
            name = (resource.get("name") or [{}])[0]
            patient.family = name.get("family", patient.family)
            patient.given = name.get("given", patient.given)
            patient.born = resource.get("birthDate", patient.born)
            gp = next((g["identifier"]["value"] for g in resource.get("generalPractitioner", [])
                       if g.get("identifier", {}).get("system") == ODS), None)
            if not created and gp != patient.gp_ods:
                patient.previous_ods = patient.gp_ods
            patient.gp_ods = gp
            died = resource.get("deceasedDateTime")
            newly_dead = died and not patient.deceased
            patient.deceased = died or patient.deceased
            patient.resource = resource
        if newly_dead:
            self.death(patient, died)
        return created

    def post_encounter(self, resource):
        nhs = self._subject(resource)
        with self.lock:
            visit = Visit(resource, nhs)
            finished = resource.get("status") == "finished"
            if visit.cls in ("IMP", "EMER") and finished:
                # a discharge closes the patient's open admission or attendance of that class
                opened = next((v for v in self.visits if v.nhs_number == nhs and v.open
                               and v.cls == visit.cls), None)
                if opened:
                    opened.open = False
                    visit.period.setdefault("start", opened.period.get("start"))
                    visit.identifiers = opened.identifiers + visit.identifiers
            self.visits.append(visit)
        if visit.cls == "IMP" and finished:
            kind = "mental-health" if self.args.inpatient_as == "mental-health" else "inpatient"
            self.queue_gp_letter(kind, nhs, visit, "Discharge summary")
        elif visit.cls == "EMER" and finished:
            self.queue_gp_letter("emergency", nhs, visit, "Emergency care discharge summary")

    def post_composition(self, resource):
        nhs = self._subject(resource)
        if resource.get("status") != "final":
            return  # a draft: nothing is sent
        with self.lock:
            visit = next((v for v in self.visits if v.nhs_number == nhs and v.cls == "AMB"
                          and not v.letter_sent), None)
            if visit is None:
                raise ValueError("no outpatient attendance waiting for a letter for this patient")
            visit.signatures = max(visit.signatures, len(resource.get("attester", [])) or 1)
            if visit.second_signer and visit.signatures < 2:
                return  # why: a trainee's letter waits for its countersignature
            visit.letter_sent = True
            visit.signed_at = resource.get("date") or now_iso()
        self.queue_gp_letter("outpatient", nhs, visit, "Outpatient letter", date=visit.signed_at)
        self.queue_patient_copy(nhs, visit)

    def death(self, patient, died):
        with self.lock:
            admission = next((v for v in self.visits if v.nhs_number == patient.nhs_number
                              and v.open and v.cls == "IMP"), None)
            if admission:
                admission.open = False
                admission.period["end"] = died
            else:
                admission = Visit({"class": {"code": "IMP"}, "period": {"start": died, "end": died}},
                                  patient.nhs_number)
        self.queue_gp_letter("inpatient", patient.nhs_number, admission,
                             "Discharge summary: patient died", died=True)

    def _subject(self, resource):
        ident = resource.get("subject", {}).get("identifier", {})
        nhs = ident.get("value")
        if nhs not in self.patients:
            raise ValueError(f"unknown patient {nhs}")
        return nhs

    # ---- letters --------------------------------------------------------------------------

    def _next_ref(self, prefix):
        """The EHR's own reference for a letter (mex-LocalID, print job, visit identifier)."""
        if self.args.own_ids == "uuid":
            return str(uuid.uuid4())
        with self.lock:
            self.counter += 1
            # why: like a real EHR's running number, it differs from run to run
            return f"{prefix}{int(time.time()) % 100000:05d}{self.counter:04d}"

    def queue_gp_letter(self, kind, nhs, visit, title, date=None, died=False):
        fault_kind = "death" if died else kind
        if fault_kind in self.faults.get("stop-kind", set()):
            log(f"fault stop-kind: {fault_kind} letter for {nhs} not sent")
            return
        self.outbox.put(("gp", dict(kind=kind, nhs=nhs, visit=visit, title=title,
                                    date=date or now_iso(), died=died,
                                    local_ref=self._next_ref("SDN"))))

    def queue_patient_copy(self, nhs, visit):
        if "patient-copy" in self.faults.get("stop-kind", set()):
            log(f"fault stop-kind: patient copy for {nhs} not sent")
            return
        self.outbox.put(("copy", dict(kind="outpatient", nhs=nhs, visit=visit,
                                      title="Outpatient letter (your copy)",
                                      date=visit.signed_at, local_ref=self._next_ref("PJ"))))

    def _letter_facts(self, job, to_ods=None, to_name=None, to_mailbox=None):
        patient = self.patients[job["nhs"]]
        gp = self.directory.lookup(patient.gp_ods) if patient.gp_ods else None
        sent_at = now_iso()
        period = {k: v for k, v in job["visit"].period.items() if v}
        date = job["date"]
        if "dated-when-sent" in self.faults:
            period = {"start": sent_at, "end": sent_at}
            date = sent_at
        return {
            "kind": job["kind"],
            "patient": patient.as_letter_patient(),
            "gp_ods": patient.gp_ods,
            "gp_name": gp.name if gp else patient.gp_ods,
            "to_ods": to_ods, "to_name": to_name, "to_mailbox": to_mailbox,
            "sender_ods": self.args.sender_ods, "sender_name": self.args.sender_name,
            "sender_mailbox": self.args.mailbox,
            "encounter_identifiers": job["visit"].identifiers
            + [{"system": "https://ehr.standin.invalid/Id/visit", "value": job["local_ref"]}],
            "period": period,
            "died": job.get("died"),
            "document_id": str(uuid.uuid4()),
            "status": "preliminary" if "preliminary" in self.faults else "final",
            "date": date,
            "sent_at": sent_at,
            "title": job["title"],
            "summary": "Seen and assessed. Condition stable." if not job.get("died")
            else "The patient died in hospital.",
            "plan": "No action required by the GP." if not job.get("died")
            else "Please update your records.",
        }

    def recipient(self, nhs):
        """The practice a GP letter goes to, or None, applying the routing faults."""
        patient = self.patients[nhs]
        ods = patient.gp_ods
        if "previous-practice" in self.faults and patient.previous_ods:
            ods = patient.previous_ods
        if not ods:
            return None
        practice = self.directory.delivering(ods)
        if practice is None:
            log(f"no electronic route for practice {ods} (closed or unknown): exceptions list")
            return None
        if practice.ods in self.faults.get("silent-practice", set()) or ods in self.faults.get(
                "silent-practice", set()):
            log(f"fault silent-practice: letter for {nhs} to {practice.ods} not sent")
            return None
        return practice

    def send_gp_letter(self, job):
        practice = self.recipient(job["nhs"])
        if practice is None:
            return
        facts = self._letter_facts(job, practice.ods, practice.name, practice.mailbox)
        body, mime = itk3.serialise(itk3.message_bundle(facts, self.style), self.style)
        workflow = itk3.KINDS[job["kind"]][0]
        self.dump(f"{job['local_ref']}.{self.style.fmt}", body)
        times = 2 if "duplicate" in self.faults else 1
        for _ in range(times):
            if practice.route == "http":
                status = self._post(f"{self.args.docman_url.rstrip('/')}/gp-documents/{practice.ods}",
                                    body, mime)
                log(f"sent {job['kind']} for {job['nhs']} to {practice.ods} over HTTP: {status}")
                continue
            status, message_id, resp = self.mesh.send(
                practice.mailbox, workflow, body, local_id=job["local_ref"],
                subject=job["title"], file_name=f"{job['local_ref']}.{self.style.fmt}",
                content_type=mime)
            log(f"sent {job['kind']} for {job['nhs']} to {practice.mailbox} on {workflow}: "
                f"{status} {message_id or resp[:200]!r}")
            self.sent.append({"local_ref": job["local_ref"], "status": status,
                              "message_id": message_id})

    def send_patient_copy(self, job):
        patient = self.patients[job["nhs"]]
        if patient.deceased and "copy-after-death" not in self.faults:
            log(f"patient {job['nhs']} has died: no copy posted to their home")
            return
        if patient.deceased:
            # why: the fault posts the copy after the death, not in the same second as it
            time.sleep(1.5)
        facts = self._letter_facts(job)
        who = facts["patient"]
        body = {
            "printJob": {"jobRef": job["local_ref"], "submittedAt": facts["sent_at"],
                         "client": self.args.sender_ods, "mailClass": "SECOND"},
            "addressee": {"kind": "PATIENT", "nhsNo": who["nhs_number"],
                          "displayName": who["name"], "dob": who["born"],
                          "postal": {"lines": who["address"][:-1], "postcode": who["address"][-1]}},
            "item": {"docRef": facts["document_id"], "title": facts["title"],
                     "letterType": "outpatient", "snomedDocType": "823681000000100",
                     "clinicDate": facts["period"].get("start"), "writtenOn": facts["date"],
                     "status": facts["status"],
                     "pages": [{"heading": "Clinical summary", "text": facts["summary"]},
                               {"heading": "Plan", "text": facts["plan"]}]},
        }
        body = json.dumps(body, indent=2).encode()
        self.dump(f"{job['local_ref']}.json", body)
        status = self._post(f"{self.args.print_url.rstrip('/')}/api/v2/print-jobs",
                            body, "application/json")
        log(f"posted patient copy for {job['nhs']} to the print service: {status}")

    def dump(self, name, body):
        if self.args.dump:
            os.makedirs(self.args.dump, exist_ok=True)
            with open(os.path.join(self.args.dump, name), "wb") as handle:
                handle.write(body)

    def _post(self, url, body, mime):
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": mime})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError as err:
            return f"error {err}"

    # ---- background work ------------------------------------------------------------------

    def dispatcher(self):
        while True:
            what, job = self.outbox.get()
            if self.args.dispatch_delay:
                time.sleep(self.args.dispatch_delay)
            try:
                if what == "gp":
                    self.send_gp_letter(job)
                else:
                    self.send_patient_copy(job)
            except Exception:  # why: one bad letter must not stop the dispatcher
                log("failed to send a letter:\n" + traceback.format_exc())

    def inbox_collector(self):
        while True:
            time.sleep(self.args.collect_interval)
            try:
                for headers, body in self.mesh.collect():
                    workflow = {k.lower(): v for k, v in headers.items()}.get("mex-workflowid")
                    self.acks.append(workflow)
                    log(f"collected {workflow} ({len(body)} bytes) from the inbox")
            except OSError:
                pass  # why: lettergate's endpoint is down between runs


def make_handler(ehr):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            if ehr.args.verbose:
                log("http " + fmt % args)

        def _reply(self, status, resource, extra=None):
            body = json.dumps(resource).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _outcome(self, status, text):
            self._reply(status, {"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "processing", "diagnostics": text}]})

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self):
            if self.path.split("?")[0].rstrip("/") == "/fhir/metadata":
                self._reply(200, {
                    "resourceType": "CapabilityStatement", "status": "active",
                    "date": "2026-01-01", "kind": "instance", "fhirVersion": "4.0.1",
                    "format": ["json"], "software": {"name": "standin-ehr"},
                    "rest": [{"mode": "server", "resource": [
                        {"type": t, "interaction": [{"code": "create"}, {"code": "update"}]}
                        for t in ("Patient", "Encounter", "Composition")]}],
                })
            else:
                self._outcome(404, f"no route {self.path}")

        def do_PUT(self):
            self._write("PUT")

        def do_POST(self):
            self._write("POST")

        def _write(self, method):
            path = self.path.split("?")[0].rstrip("/")
            try:
                resource = self._body()
                rtype = path.rsplit("/", 1)[-1]
                if resource.get("resourceType") != rtype:
                    raise ValueError(f"body is a {resource.get('resourceType')}, not a {rtype}")
                if method == "PUT" and rtype == "Patient":
                    created = ehr.put_patient(resource)
                elif method == "POST" and rtype == "Encounter":
                    ehr.post_encounter(resource)
                    created = True
                elif method == "POST" and rtype == "Composition":
                    ehr.post_composition(resource)
                    created = True
                else:
                    return self._outcome(405, f"{method} {path} is not supported")
            except (ValueError, KeyError) as err:
                return self._outcome(422, str(err))
            resource = dict(resource)
            resource.setdefault("id", str(uuid.uuid4()))
            resource["meta"] = {"versionId": "1", "lastUpdated": now_iso()}
            loc = f"/fhir/{resource['resourceType']}/{resource['id']}/_history/1"
            if ehr.args.verbose:
                log(f"{method} {self.path}: {'201' if created else '200'}")
            self._reply(201 if created else 200, resource, {"Location": loc})

    return Handler


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="faults:\n" + "\n".join(
                                    f"  {k:18} {v}" for k, v in FAULTS.items()))
    p.add_argument("--port", type=int, default=18800, help="FHIR port on 127.0.0.1")
    p.add_argument("--directory", action="append", default=[],
                   help="scenario fixture file whose practices are the EHR's directory")
    p.add_argument("--mesh-url", default="http://127.0.0.1:18702")
    p.add_argument("--mailbox", default="RXXHC001", help="the EHR's own MESH mailbox")
    p.add_argument("--print-url", default="http://127.0.0.1:18703")
    p.add_argument("--docman-url", default="http://127.0.0.1:18703",
                   help="base URL for practices on route: http")
    p.add_argument("--sender-ods", default="RXX")
    p.add_argument("--sender-name", default="Stand-in Hospitals NHS Trust")
    p.add_argument("--refs", choices=["urn-uuid", "relative"], default="urn-uuid")
    p.add_argument("--recipient", choices=["receiver", "destination", "none"], default="receiver")
    p.add_argument("--layout", choices=["nested", "flat"], default="nested")
    p.add_argument("--format", choices=["json", "xml"], default="json")
    p.add_argument("--inpatient-as", choices=["inpatient", "mental-health"], default="inpatient",
                   help="send inpatient discharges as this kind (a mental health trust)")
    p.add_argument("--own-ids", choices=["uuid", "counter"], default="uuid",
                   help="the EHR's own letter references: UUIDs, or running numbers")
    p.add_argument("--fault", action="append", default=[], metavar="NAME[=VALUE]")
    p.add_argument("--dispatch-delay", type=float, default=0.0, help="seconds before each send")
    p.add_argument("--collect-interval", type=float, default=1.0)
    p.add_argument("--dump", metavar="DIR", help="also write every body sent into DIR")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    check_test_vector()
    ehr = Ehr(args)
    threading.Thread(target=ehr.dispatcher, daemon=True).start()
    threading.Thread(target=ehr.inbox_collector, daemon=True).start()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(ehr))
    log(f"listening on http://127.0.0.1:{args.port}/fhir; MESH {args.mesh_url} as {args.mailbox}; "
        f"refs={args.refs} recipient={args.recipient} layout={args.layout} format={args.format} "
        f"faults={','.join(args.fault) or 'none'}; {len(ehr.directory.by_ods)} practices")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
