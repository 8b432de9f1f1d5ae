//! FHIR as lettergate meets it: [`bundle`] resolves references inside bundles, [`r4`] maps clinical events onto the FHIR R4 requests a
//! driver sends an EHR, and [`xml`] reads FHIR XML (STU3 ITK3 bundles) into the JSON shape.

pub mod bundle;
pub mod r4;
pub mod xml;
