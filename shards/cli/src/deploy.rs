//! Deployment options shared by every service: where the listening sockets come from
//! (bound, systemd socket activation, `--listen-fd`, a hot restart's predecessor), hot
//! restart, and the drain delay. See docs/deploy.md.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::Args;
use percore::{
    Error, ServerBuilder,
    server::{Cidr, InheritedListeners, ProxyProtocol, SuccessorCommand, UpgradeConfig, upgrade},
};

#[derive(Args, Clone, Debug)]
pub struct DeployArgs {
    /// Serve the listening TCP socket at this descriptor instead of binding --listen
    /// (repeatable). Without it, sockets passed by systemd (LISTEN_FDS) are used when
    /// LISTEN_PID names this process; a socket named `admin` (FileDescriptorName=admin)
    /// becomes the admin listener.
    #[arg(long = "listen-fd", value_name = "N")]
    pub listen_fd: Vec<i32>,
    /// Seconds the listeners stay open after SIGTERM (or POST /drain on the admin
    /// listener) while health checks already answer 503, so that a load balancer stops
    /// sending before the server stops accepting; then the graceful drain. 0: none.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_delay)]
    pub drain_delay: Duration,
    /// Listen on this Unix socket for a successor (hot restart): `percore ...
    /// --upgrade-from PATH` takes every listening socket over from this process, which
    /// then drains and exits. SIGUSR2 starts that successor (same program and arguments).
    #[arg(long, value_name = "PATH")]
    pub upgrade_socket: Option<PathBuf>,
    /// Take the listening sockets over from the percore listening on this upgrade socket
    /// (hot restart) instead of binding.
    #[arg(long, value_name = "PATH", conflicts_with = "listen_fd")]
    pub upgrade_from: Option<PathBuf>,
    /// Accept the PROXY protocol (v1 and v2) from the proxies in --proxy-from: their
    /// connections must start with a header, whose client address services, logs and
    /// metrics then see. Anyone else sending a header is closed.
    #[arg(long, requires = "proxy_from")]
    pub proxy_protocol: bool,
    /// The proxies trusted to send PROXY headers: addresses or blocks, comma-separated
    /// (e.g. `127.0.0.1,10.0.0.0/8`).
    #[arg(
        long,
        value_name = "CIDR,...",
        value_delimiter = ',',
        requires = "proxy_protocol"
    )]
    pub proxy_from: Vec<Cidr>,
    /// Seconds a trusted proxy has to send its whole PROXY header.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_delay)]
    pub proxy_header_timeout: Duration,
}

/// Seconds, whole or fractional, from 0 to an hour.
fn parse_delay(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if (0.0..=3600.0).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("`{s}` is not a number of seconds in [0, 3600]")),
    }
}

impl DeployArgs {
    /// `builder` with these options: inherited sockets, drain delay, hot restart.
    pub fn apply(&self, builder: ServerBuilder) -> Result<ServerBuilder, Error> {
        let mut builder = builder.drain_delay(self.drain_delay);
        if self.proxy_protocol {
            let mut proxy = ProxyProtocol::from(self.proxy_from.clone());
            proxy.header_timeout = self.proxy_header_timeout.max(Duration::from_millis(1));
            builder = builder.proxy_protocol(proxy);
        }
        let inherited = if let Some(path) = &self.upgrade_from {
            Some(upgrade::take_over(path)?)
        } else if !self.listen_fd.is_empty() {
            Some(InheritedListeners::from_fds(&self.listen_fd)?)
        } else {
            InheritedListeners::from_systemd()?
        };
        let builder = match inherited {
            Some(listeners) => builder.inherit(listeners),
            None => builder,
        };
        Ok(match &self.upgrade_socket {
            Some(socket) => builder.upgrade(UpgradeConfig {
                socket: socket.clone(),
                successor: successor_command(),
            }),
            None => builder,
        })
    }
}

/// What SIGUSR2 runs: this program, as resolved now (a binary replaced on disk later is the
/// one that runs), with this process's arguments less those that name descriptors of this
/// process (`--listen-fd`) or a predecessor (`--upgrade-from`); the subcommand is spelled
/// out so that `--upgrade-from` lands on it.
fn successor_command() -> Option<SuccessorCommand> {
    let program = std::env::current_exe().ok()?;
    let mut args: Vec<OsString> = Vec::new();
    let mut skip_value = false;
    for arg in std::env::args_os().skip(1) {
        if skip_value {
            skip_value = false;
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--listen-fd" || text == "--upgrade-from" {
            skip_value = true;
            continue;
        }
        if text.starts_with("--listen-fd=") || text.starts_with("--upgrade-from=") {
            continue;
        }
        args.push(arg);
    }
    if args.is_empty() {
        args.push("serve".into());
    }
    Some(SuccessorCommand { program, args })
}
