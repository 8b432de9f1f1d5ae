"""A small MESH API client: NHSMESH authorisation, send, and collecting the inbox.

Written from the MESH API description (NHS Digital developer hub, see SOURCES.md): every
request carries a fresh token, a send is one `POST /messageexchange/{mailbox}/outbox`, and a
send is never retried, because a retried send can duplicate a letter.
"""

import hashlib
import hmac
import json
import platform
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

ACCEPT = "application/vnd.mesh.v2+json"


def nhsmesh_token(mailbox, password, shared_key, nonce=None, nonce_count=0, timestamp=None):
    """The `Authorization` header value for one request."""
    nonce = nonce or str(uuid.uuid4())
    timestamp = timestamp or datetime.now(timezone.utc).strftime("%Y%m%d%H%M")
    message = f"{mailbox}:{nonce}:{nonce_count}:{password}:{timestamp}"
    digest = hmac.new(shared_key.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"NHSMESH {mailbox}:{nonce}:{nonce_count}:{timestamp}:{digest}"


def check_test_vector():
    """The test vector of DOMAIN.md; raises if this implementation disagrees with it."""
    token = nhsmesh_token(
        "X26ABC1",
        "password",
        "TestKey",
        nonce="00000000-0000-0000-0000-000000000000",
        nonce_count=0,
        timestamp="202401011200",
    )
    expected = "91ba257cdd502881606b73670bc18a5c2342e44e9b9dd707aa2241ac2869aa52"
    if not token.endswith(":" + expected):
        raise AssertionError(f"NHSMESH token {token} does not match the test vector")


class MeshClient:
    def __init__(self, base_url, mailbox, password, shared_key, timeout=10.0):
        self.base = base_url.rstrip("/") + "/messageexchange"
        self.mailbox = mailbox
        self.password = password
        self.shared_key = shared_key
        self.timeout = timeout
        self.handshaken = False

    def _request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        req.add_header("Authorization", nhsmesh_token(self.mailbox, self.password, self.shared_key))
        req.add_header("Accept", ACCEPT)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def handshake(self):
        status, _, body = self._request(
            "POST",
            f"/{self.mailbox}",
            b"",
            {
                "mex-ClientVersion": "standin-ehr/1.0",
                "mex-OSName": platform.system(),
                "mex-OSVersion": platform.release(),
                "mex-JavaVersion": "N/A",
                "mex-OSArchitecture": platform.machine(),
            },
        )
        self.handshaken = 200 <= status < 300
        return status, body

    def send(self, to_mailbox, workflow, body, *, local_id, subject, file_name, content_type):
        """One send: returns (status, message id or None, response body). Never retried."""
        if not self.handshaken:
            try:
                self.handshake()
            except OSError:
                pass  # why: the handshake is advisory; the send says whether MESH is there
        status, _, resp = self._request(
            "POST",
            f"/{self.mailbox}/outbox",
            body,
            {
                "Content-Type": "application/octet-stream",
                "mex-From": self.mailbox,
                "mex-To": to_mailbox,
                "mex-WorkflowID": workflow,
                "mex-LocalID": local_id,
                "mex-Subject": subject,
                "mex-FileName": file_name,
                "mex-Content-Type": content_type,
                "mex-Content-Compressed": "N",
            },
        )
        message_id = None
        if 200 <= status < 300:
            try:
                message_id = json.loads(resp).get("message_id")
            except ValueError:
                pass
        return status, message_id, resp

    def collect(self):
        """List, download and acknowledge everything in the inbox; returns [(headers, body)]."""
        status, _, body = self._request("GET", f"/{self.mailbox}/inbox")
        if status != 200:
            return []
        collected = []
        for message_id in json.loads(body).get("messages", []):
            status, headers, content = self._request("GET", f"/{self.mailbox}/inbox/{message_id}")
            if status not in (200, 206):
                continue
            self._request("PUT", f"/{self.mailbox}/inbox/{message_id}/status/acknowledged", b"")
            collected.append((headers, content))
        return collected
