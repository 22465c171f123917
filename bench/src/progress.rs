//! Live progress of a load run: an indicatif bar with the current rate and errors when
//! stderr is a terminal, one plain line per period otherwise (logs, CI), nothing with
//! `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::{load::Progress, measure::Phase};

/// Where progress goes.
pub enum Reporter {
    Bar(ProgressBar),
    Lines,
    Quiet,
}

impl Reporter {
    /// A bar on a terminal, lines otherwise; `quiet` silences both.
    pub fn for_stderr(quiet: bool) -> Self {
        if quiet {
            Reporter::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(1000);
            bar.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            Reporter::Bar(bar)
        } else {
            Reporter::Lines
        }
    }

    pub fn update(&self, p: Progress) {
        let phase = match p.phase {
            Phase::Warmup => "warm-up",
            Phase::Measure => "measure",
            Phase::Done => "done",
        };
        let msg = format!(
            "{:>6.1}/{:.0} s  {:>10.0} req/s  ok {}  errors {}",
            p.elapsed_secs, p.phase_secs, p.rate, p.ok, p.errors
        );
        match self {
            Reporter::Bar(bar) => {
                bar.set_prefix(phase);
                let frac = p.elapsed_secs / p.phase_secs.max(f64::EPSILON);
                bar.set_position((frac * 1000.0) as u64);
                bar.set_message(msg);
            }
            Reporter::Lines => eprintln!("percore-bench: {phase} {msg}"),
            Reporter::Quiet => {}
        }
    }

    pub fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
