//! SIGTERM announces a stop (health checks answer 503, the listeners stay open for the
//! drain delay, then the graceful stop); SIGINT starts the graceful stop at once (Ctrl-C at
//! a terminal has no load balancer to warn); a second of either stops at once. SIGHUP
//! reloads what registered for it (TLS certificates) and never stops the server. SIGUSR2
//! starts a successor process (hot restart) when `--upgrade-socket` is set.

use std::{
    sync::{Arc, atomic::Ordering},
    thread,
    time::Duration,
};

use super::control::ServerControl;
use crate::sys::signal::wait_termination_signal;

/// The thread that waits for termination signals (they are blocked in every other thread).
/// It ends once every shard has stopped.
pub(super) fn spawn(control: Arc<ServerControl>) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("percore-signals".into())
        .spawn(move || {
            let mut received = 0;
            while control.running_shards.load(Ordering::SeqCst) > 0 {
                match wait_termination_signal(Duration::from_millis(100)) {
                    Ok(Some(libc::SIGHUP)) => {
                        if !control.reload() {
                            tracing::info!("SIGHUP: nothing to reload");
                        }
                    }
                    Ok(Some(libc::SIGUSR2)) => match control.on_upgrade_signal.get() {
                        Some(start_successor) => start_successor(),
                        None => tracing::warn!(
                            "SIGUSR2: hot restart is off (no --upgrade-socket); ignored"
                        ),
                    },
                    Ok(Some(signal)) => {
                        received += 1;
                        let name = if signal == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
                        if received == 1 && signal == libc::SIGTERM {
                            tracing::info!("{name}: health checks answer 503; listeners stay open for {:?}, then open connections have {:?} to finish (send it again to stop now)", control.drain_delay, control.drain_timeout);
                            control.announce_stop();
                        } else if received == 1 {
                            tracing::info!("{name}: stopping; open connections have {:?} to finish (send it again to stop now)", control.drain_timeout);
                            control.request_stop();
                        } else {
                            tracing::warn!("{name} again: closing every connection now");
                            control.stop_within(Duration::ZERO);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!("waiting for signals failed: {e}; signals are not handled");
                        return;
                    }
                }
            }
        })
}
