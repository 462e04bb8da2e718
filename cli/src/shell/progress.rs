//! A progress bar for long `key put` / `key get` (indicatif), drawn on stderr when stdout and
//! stderr are a terminal (or when forced with `--progress`), redrawn at most every 100 ms:
//! `key1 [#########>----------]  45%  22.5 MiB/50.0 MiB  31.2 MiB/s`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Redraws per second (every 100 ms).
const REDRAW_HZ: u8 = 10;
const TEMPLATE: &str = "{prefix} [{bar:30}] {percent:>3}%  {mib}/{total_mib}  {rate}";

pub struct Progress(ProgressBar);

/// Whether to draw: `Some(true)` forced on, `Some(false)` off, `None` when stdout and stderr
/// (where the bar is drawn) are both a terminal.
pub fn wanted(flag: Option<bool>) -> bool {
    flag.unwrap_or_else(|| std::io::stdout().is_terminal() && std::io::stderr().is_terminal())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(TEMPLATE)
        .expect("the progress template is valid")
        .progress_chars("#>-")
        .with_key("mib", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1} MiB", mib(s.pos()));
        })
        .with_key(
            "total_mib",
            |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1} MiB", mib(s.len().unwrap_or(0)));
            },
        )
        // The average rate since the start, as `ozone sh` always showed it.
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let secs = s.elapsed().as_secs_f64().max(0.001);
            let _ = write!(w, "{:.1} MiB/s", mib(s.pos()) / secs);
        })
}

impl Progress {
    pub fn new(label: &str, total: u64, visible: bool) -> Self {
        // A terminal-like target, not `ProgressDrawTarget::stderr()`: that one hides itself
        // when stderr is not a terminal, and `--progress` must draw there too.
        let target = if visible {
            ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), REDRAW_HZ)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target)
            .with_style(style())
            .with_prefix(label.to_string());
        Progress(bar)
    }

    pub fn add(&mut self, n: u64) {
        self.0.inc(n);
    }

    /// Draws the final state and ends the line.
    pub fn finish(self) {
        self.0.finish();
        if !self.0.is_hidden() {
            eprintln!();
        }
    }
}
