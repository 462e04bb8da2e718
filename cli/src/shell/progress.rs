//! A progress bar for long `key put` / `key get`, drawn on stderr when stdout and stderr are a
//! terminal (or when forced with `--progress`), redrawn at most every 100 ms:
//! `key1 [#########>----------]  45%  22.5 MiB/50.0 MiB  31.2 MiB/s`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const WIDTH: usize = 30;
const REDRAW: Duration = Duration::from_millis(100);

pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    visible: bool,
}

/// Whether to draw: `Some(true)` forced on, `Some(false)` off, `None` when stdout and stderr
/// (where the bar is drawn) are both a terminal.
pub fn wanted(flag: Option<bool>) -> bool {
    flag.unwrap_or_else(|| std::io::stdout().is_terminal() && std::io::stderr().is_terminal())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

impl Progress {
    pub fn new(label: &str, total: u64, visible: bool) -> Self {
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            started: Instant::now(),
            drawn: None,
            visible,
        }
    }

    pub fn add(&mut self, n: u64) {
        self.done += n;
        if self.drawn.is_none_or(|t| t.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    fn draw(&mut self) {
        if !self.visible {
            return;
        }
        self.drawn = Some(Instant::now());
        let frac = if self.total == 0 {
            1.0
        } else {
            (self.done as f64 / self.total as f64).min(1.0)
        };
        let filled = (frac * WIDTH as f64) as usize;
        let mut bar = "#".repeat(filled);
        if filled < WIDTH {
            bar.push('>');
            bar.push_str(&"-".repeat(WIDTH - filled - 1));
        }
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{}] {:>3.0}%  {:.1} MiB/{:.1} MiB  {:.1} MiB/s\x1b[K",
            self.label,
            bar,
            frac * 100.0,
            mib(self.done),
            mib(self.total),
            mib(self.done) / secs
        );
        let _ = err.flush();
    }

    /// Draws the final state and ends the line.
    pub fn finish(mut self) {
        if self.visible {
            self.draw();
            let _ = writeln!(std::io::stderr());
        }
    }
}
