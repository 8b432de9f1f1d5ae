//! The progress bar of `run`: [`Progress`].

/// A progress bar on stderr that appears once a run has taken a second; never drawn when
/// stderr is not a terminal or `CI` is set, so CI logs stay clean.
pub struct Progress {
    pub bar: indicatif::ProgressBar,
    allowed: bool,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        use std::io::IsTerminal;
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::hidden(),
        );
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} scenarios {elapsed}")
        {
            bar.set_style(style);
        }
        let allowed = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Progress {
            bar,
            allowed,
            started: std::time::Instant::now(),
        }
    }

    /// Counts one finished scenario, showing the bar once the run is past a second.
    pub fn step(&self) {
        if self.allowed
            && self.bar.is_hidden()
            && self.started.elapsed() > std::time::Duration::from_secs(1)
        {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        self.bar.inc(1);
    }
}
