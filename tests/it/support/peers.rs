//! The interop peers: programs nobody on this project wrote, installed by
//! `scripts/install-interop-peers.sh` into `.venv-interop` (or `$LETTERGATE_PEERS`).
//!
//! A missing peer fails the test with the command that installs it; it never passes silently.

use super::loopback::{free_port, Server};
use super::root;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The virtual environment holding the peers.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("LETTERGATE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-interop"));
    if !venv.join("bin/python").exists() {
        panic!(
            "the interop peers are not installed in {}: run `bash scripts/install-interop-peers.sh` \
             (or set LETTERGATE_PEERS to a virtual environment that has mesh-sandbox, mesh-client, \
             hl7, hl7apy, fhir.resources and lxml)",
            venv.display()
        );
    }
    venv
}

/// A program of the peers' virtual environment (`python`, `uvicorn`, `mllp_send`...).
pub fn bin(name: &str) -> PathBuf {
    let p = venv().join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/install-interop-peers.sh`",
        p.display()
    );
    p
}

/// Runs a Python snippet in the peers' environment; returns (exit code, stdout, stderr).
pub fn python(script: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("python"))
        .arg("-c")
        .arg(script)
        .args(args)
        // This machine sets CA bundles for requests; loopback peers use plain HTTP.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .expect("run the peers' python");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// NHS Digital's mesh-sandbox on 127.0.0.1, full NHSMESH authentication with `shared_key`,
/// and a file store under `store` in which every mailbox in `mailboxes` exists (mesh-sandbox
/// registers each upper-case folder of its store as a mailbox, password `password`).
pub fn mesh_sandbox(store: &Path, shared_key: &str, mailboxes: &[&str]) -> Server {
    mesh_sandbox_with(store, shared_key, mailboxes, &[])
}

/// [`mesh_sandbox`] with more arguments for uvicorn (TLS: `--ssl-certfile` and so on).
pub fn mesh_sandbox_with(
    store: &Path,
    shared_key: &str,
    mailboxes: &[&str],
    uvicorn_args: &[&str],
) -> Server {
    for m in mailboxes {
        std::fs::create_dir_all(store.join(m.to_uppercase())).unwrap();
    }
    let port = free_port();
    let child = Command::new(bin("uvicorn"))
        .args([
            "mesh_sandbox.api:app",
            "--host",
            "127.0.0.1",
            "--workers",
            "1",
        ])
        .args(["--port", &port.to_string(), "--log-level", "warning"])
        .args(uvicorn_args)
        .env("AUTH_MODE", "full")
        .env("STORE_MODE", "file")
        .env("MAILBOXES_DATA_DIR", store)
        .env("SHARED_KEY", shared_key)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mesh-sandbox");
    Server { child, port }.wait_listening(Duration::from_secs(30))
}

/// The password mesh-sandbox gives every mailbox of its file store.
pub const SANDBOX_PASSWORD: &str = "password";

/// Writes test PKI into `dir` with the `cryptography` package of the peers' environment:
/// `ca.pem`; `server.pem`/`server.key` for 127.0.0.1 signed by it; `client.pem`/`client.key`
/// signed by it; `stranger.pem`/`stranger.key` signed by another CA.
pub fn test_pki(dir: &Path) {
    let (code, out, err) = python(PKI, &[dir.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "could not make test certificates: {out}{err}");
}

const PKI: &str = r#"
import sys, datetime, ipaddress
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def save(k, c, stem):
    open(f"{out}/{stem}.key", "wb").write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    open(f"{out}/{stem}.pem", "wb").write(c.public_bytes(serialization.Encoding.PEM))
def cert(cn, issuer_key, issuer_name, ca, server=False):
    k = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer_name or name(cn))
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return k, b.sign(issuer_key or k, hashes.SHA256())
ca_k, ca_c = cert("lettergate test CA", None, None, True)
other_k, other_c = cert("another CA", None, None, True)
open(f"{out}/ca.pem", "wb").write(ca_c.public_bytes(serialization.Encoding.PEM))
save(*cert("127.0.0.1", ca_k, ca_c.subject, False, server=True), "server")
save(*cert("lettergate client", ca_k, ca_c.subject, False), "client")
save(*cert("stranger", other_k, other_c.subject, False), "stranger")
"#;
