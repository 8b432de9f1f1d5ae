//! The protocols and domain facts every other layer speaks: [`mesh`] (NHSMESH auth, the MESH
//! client), [`itk3`] (Transfer of Care bundles and acknowledgements), [`fhir`] (the R4 mapping a
//! driver sends, STU3 XML read as JSON), [`hl7`] (v2 messages, MLLP, ADT, MDM), the domain
//! identifiers ([`ids`]), the letter table ([`letter`]), time ([`clock`]), the calendar of
//! England and Wales ([`calendar`]), the dates a letter states ([`dates`]), the letter reader
//! ([`read`]), the normalisation of letter text ([`normalize`]) and the escaping of text from
//! outside for consoles and reports ([`text`]).
//!
//! This is the bottom layer: it imports nothing from the rest of the crate, so the simulator,
//! the captures, the checks and the reports can all depend on it (see `tests/layers.rs`).

pub mod calendar;
pub mod clock;
pub mod dates;
pub mod de;
pub mod digest;
pub mod event;
pub mod fhir;
pub mod hl7;
pub mod ids;
pub mod itk3;
pub mod letter;
pub mod limits;
pub mod listen;
pub mod mesh;
pub mod message;
pub mod normalize;
pub mod read;
pub mod text;

/// Formats an error with its chain of causes: "a: b: c".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
