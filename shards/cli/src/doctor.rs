//! `percore doctor`: checks this host for percore and prints one line per item with the fix.

use std::process::ExitCode;

use clap::Args;
use percore::{
    DriverChoice,
    doctor::{self, DoctorConfig, Facts},
};

#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// Shards the server will run (default: one per CPU this process may use).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    shards: Option<u32>,
    /// Connections the whole server should hold at once (sizes the open-files check).
    #[arg(long, default_value_t = DoctorConfig::DEFAULT_EXPECTED_CONNECTIONS)]
    connections: usize,
    /// The driver the run would be started with: `auto` (io_uring where it works, else
    /// epoll), `io_uring` or `epoll`. Default: the `PERCORE_DRIVER` environment variable,
    /// else `auto`, as for `serve`. The `driver` line says which one a run gets, and the exit
    /// status is the one that run would meet.
    #[arg(long, value_parser = crate::parse_driver)]
    driver: Option<DriverChoice>,
    /// Print one JSON object instead of lines, for machines.
    #[arg(long)]
    json: bool,
}

/// Exit status: 0 when percore can run here with the chosen driver (OK or WARN only), 3 when
/// a check fails (the status the server exits with when io_uring is unavailable), 2 when
/// `PERCORE_DRIVER` names no driver (as `serve`).
pub(crate) fn run(args: &DoctorArgs) -> ExitCode {
    let driver = match args.driver {
        Some(choice) => choice,
        None => match DriverChoice::from_env() {
            Ok(choice) => choice.unwrap_or_default(),
            Err(e) => {
                eprintln!("percore: {e}");
                return ExitCode::from(e.exit_code() as u8);
            }
        },
    };
    let defaults = DoctorConfig::default();
    let config = DoctorConfig {
        shards: args.shards.map_or(defaults.shards, |n| n as usize),
        expected_connections: args.connections,
        driver,
    };
    let facts = Facts::gather();
    let checks = doctor::judge(&facts, &config);
    let planned = doctor::planned_driver(&facts, driver);
    if args.json {
        print!("{}", doctor::to_json(&config, &checks));
    } else {
        for check in &checks {
            println!("{check}");
        }
        let code = doctor::exit_code(&checks);
        println!(
            "{}",
            if code == 0 {
                format!(
                    "percore can run here on the {} driver ({} shard(s), {} connections)",
                    planned.map_or("?", |d| d.name()),
                    config.shards,
                    config.expected_connections
                )
            } else {
                format!("percore cannot run here until every FAIL is fixed (exit status {code})")
            }
        );
    }
    // Exit codes are 0 or 3 (see `doctor::exit_code`), both fit a u8.
    ExitCode::from(doctor::exit_code(&checks) as u8)
}
