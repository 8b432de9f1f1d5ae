//! JUnit XML (quick-junit) as GitLab, Jenkins and Azure DevOps show it: a suite per scenario,
//! one test case per expectation plus "nothing else was sent" and "the snapshot matches",
//! the scenario file as class name, the findings and diff in the failure body.

use super::model::{FindingReport, RunReport, ScenarioReport};
use crate::expect::Scope;
use crate::protocol::text::{escape_controls as esc, escape_controls_keeping_lines};
use crate::run::Verdict;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// Text for a name, class name or message: control characters escaped (most are not even
/// allowed in XML 1.0, and a CI page would show the rest raw).
fn line(text: &str) -> String {
    esc(text).into_owned()
}

fn case(s: &ScenarioReport, name: String, findings: Vec<&FindingReport>) -> TestCase {
    let status = if findings.is_empty() {
        TestCaseStatus::success()
    } else {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        st.set_message(line(&findings[0].text));
        st.set_type(format!("{:?}", findings[0].severity).to_lowercase());
        let body: Vec<String> = findings
            .iter()
            .map(|f| {
                let mut t = format!("[{}] {}", f.severity.name(), f.text);
                if let Some(d) = &f.diff {
                    t.push('\n');
                    t.push_str(d);
                }
                t
            })
            .collect();
        st.set_description(escape_controls_keeping_lines(&body.join("\n")).into_owned());
        st
    };
    let mut tc = TestCase::new(line(&name), status);
    tc.set_classname(line(&s.path));
    tc
}

/// The report as JUnit XML.
pub fn render(report: &RunReport) -> Result<String, quick_junit::SerializeError> {
    let mut out = Report::new("lettergate");
    for s in &report.scenarios {
        let mut suite = TestSuite::new(line(&s.id));
        if s.verdict == Verdict::Error {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message(line(s.error.as_deref().unwrap_or_default()));
            st.set_type("harness error");
            let mut tc = TestCase::new(
                line(&format!("{}: the harness could drive and capture", s.id)),
                st,
            );
            tc.set_classname(line(&s.path));
            suite.add_test_case(tc);
        } else {
            let of = |scope: Scope| {
                s.findings
                    .iter()
                    .filter(|f| f.scope == scope)
                    .collect::<Vec<_>>()
            };
            for x in &s.expectations {
                let name = format!(
                    "expect[{}]: {} for {} to {} (x{})",
                    x.index,
                    x.letter.words(),
                    x.patient,
                    x.to,
                    x.count
                );
                suite.add_test_case(case(s, name, of(Scope::Expectation(x.index))));
            }
            suite.add_test_case(case(s, "nothing else was sent".into(), of(Scope::Scenario)));
            suite.add_test_case(case(s, "the snapshot matches".into(), of(Scope::Snapshot)));
        }
        suite.set_time(Duration::from_millis(s.elapsed_ms));
        out.add_test_suite(suite);
    }
    out.to_string()
}
