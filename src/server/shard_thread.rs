//! Starting the shard threads: pin, build the ring, run the per-shard setup, report ready,
//! then run the loop until the server stops.

use std::{
    cell::RefCell,
    future::Future,
    rc::Rc,
    sync::{Arc, atomic::Ordering, mpsc},
    thread,
};

use super::{
    builder::{ServerBuilder, ShardInfo},
    control::ServerControl,
    drain::{STOP, ShardStop},
    handle::ServerHandle,
    placement,
    report::{ShardReport, StartupReport},
    shard_loop::ShardLoop,
    signals, watchdog,
};
use crate::{
    blocking::{BlockingConfig, BlockingPool, POOL},
    driver::Driver,
    error::Error,
    mesh::{self, MESH, MeshShard},
    metrics::{self, READINESS, REGISTRY},
    net::{NET, NetShard, steer::SteerShared},
    sys,
    task::{CORE, Core, remote::ShardRemote},
    time::{TIMERS, Timers, clock::Clock},
};

type Setup<Fut> = dyn Fn(ShardInfo) -> Result<Fut, Error> + Send + Sync;

pub(super) fn start_all<Fut>(
    builder: ServerBuilder,
    control: Arc<ServerControl>,
    setup: Arc<Setup<Fut>>,
) -> Result<ServerHandle, Error>
where
    Fut: Future<Output = ()> + 'static,
{
    let cpus = placement::resolve(&builder.placement)?;
    let count = cpus.len();
    sys::signal::ignore_sigpipe();
    let nofile = sys::rlimit::raise_nofile_to_hard().ok();
    // Signals are blocked before any thread starts, so every shard and pool thread inherits
    // the mask and only the signal thread receives SIGINT/SIGTERM.
    if builder.handle_signals {
        sys::signal::block_termination_signals()
            .map_err(|e| Error::io("blocking SIGINT/SIGTERM", e))?;
    }
    let blocking_config = match builder.blocking.clone() {
        Some(config) => config,
        None => BlockingConfig::from_env().map_err(|e| Error::Config(e.to_string()))?,
    };
    let blocking_threads = blocking_config.threads;
    let blocking = BlockingPool::new(blocking_config)
        .map_err(|e| Error::io("starting the blocking pool", e))?;
    let remotes = (0..count)
        .map(|id| ShardRemote::new(id).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::io("creating shard eventfds", e))?;
    control.set_remotes(remotes.clone());
    let meshes = mesh::build(remotes.clone(), builder.mesh_capacity);
    let mesh_shared = meshes[0].shared.clone();
    if let Some(max) = builder.max_connections
        && max < count
    {
        return Err(Error::Config(format!(
            "max_connections {max} is below the number of shards ({count}): each shard needs at least one connection"
        )));
    }
    let steer = Arc::new(
        SteerShared::new(builder.steering, count).with_global_cap(builder.max_connections),
    );

    // Bound before the shards start (or inherited), served by a thread of its own (see
    // `metrics::admin`).
    let admin = match (builder.take_inherited_admin(), builder.admin) {
        (Some(fd), _) => Some(std::net::TcpListener::from(fd)),
        (None, Some(addr)) => {
            Some(std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?)
        }
        (None, None) => None,
    };
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
    // Kept for a successor when hot restart is on.
    let admin_dup = match (&admin, &builder.upgrade) {
        (Some(listener), Some(_)) => Some(
            sys::inherit::dup(std::os::fd::AsFd::as_fd(listener))
                .map_err(|e| Error::io("keeping the admin listener for a hot restart", e))?,
        ),
        _ => None,
    };

    // Started before the shards, so that health checks answer 503 (starting) meanwhile.
    let admin_thread = match admin {
        Some(listener) => {
            let (running, drain) = (control.clone(), control.clone());
            let hooks = metrics::AdminHooks {
                readiness: control.readiness.clone(),
                drain: Box::new(move || {
                    if drain.announce_stop() {
                        format!(
                            "draining: /healthz answers 503; listeners close in {:?}, then open connections have {:?}\n",
                            drain.drain_delay, drain.drain_timeout
                        )
                    } else {
                        "already stopping\n".to_string()
                    }
                }),
                // Until the shards have stopped (or never started), or a successor took the
                // listener over.
                running: Box::new(move || {
                    (running.running_shards.load(Ordering::SeqCst) > 0 || !running.stop_requested())
                        && !running.handed_over.load(Ordering::SeqCst)
                }),
            };
            Some(
                metrics::spawn_admin(listener, mesh_shared.clone(), hooks)
                    .map_err(|e| Error::io("spawning the admin thread", e))?,
            )
        }
        None => None,
    };
    let (ready_tx, ready_rx) = mpsc::channel::<Result<ShardReport, Error>>();
    let mut threads = Vec::with_capacity(count);
    for ((id, cpu), mesh) in cpus.iter().copied().enumerate().zip(meshes) {
        let parts = ShardParts {
            info: ShardInfo { id, count, cpu },
            remote: remotes[id].clone(),
            mesh,
            blocking: blocking.clone(),
            control: control.clone(),
            builder: builder.clone(),
            steer: steer.clone(),
        };
        let setup = setup.clone();
        let ready = ready_tx.clone();
        control.running_shards.fetch_add(1, Ordering::SeqCst);
        let spawned = thread::Builder::new()
            .name(format!("percore-shard-{id}"))
            .spawn(move || {
                let control = parts.control.clone();
                let result = shard_main(parts, &*setup, ready);
                control.running_shards.fetch_sub(1, Ordering::SeqCst);
                result
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                control.running_shards.fetch_sub(1, Ordering::SeqCst);
                control.stop_within(std::time::Duration::ZERO);
                for t in threads {
                    let _ = t.join();
                }
                return Err(Error::io(format!("spawning shard thread {id}"), e));
            }
        }
    }
    drop(ready_tx);

    let mut shards = Vec::with_capacity(count);
    let mut first_error = None;
    for _ in 0..count {
        match ready_rx.recv() {
            Ok(Ok(report)) => shards.push(report),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
                control.stop_within(std::time::Duration::ZERO);
            }
            Err(_) => {
                first_error.get_or_insert(Error::Config(
                    "a shard thread ended before reporting".into(),
                ));
                break;
            }
        }
    }
    if let Some(e) = first_error {
        control.stop_within(std::time::Duration::ZERO);
        for t in threads {
            let _ = t.join();
        }
        blocking.shutdown(std::time::Duration::from_secs(1));
        return Err(e);
    }
    shards.sort_by_key(|s| s.id);
    let mut report = StartupReport::new(shards, nofile, blocking_threads);
    if let Some(line) = placement::oversubscription(&cpus, placement::allowed_count()) {
        tracing::warn!("{line}");
        report.warnings.push(line);
    }
    report.admin_addr = admin_addr;
    report.listeners.clone_from(&builder.listeners_note);
    report
        .fallbacks
        .extend(builder.early_fallbacks.iter().cloned());
    report.steering = format!(
        "{} (a shard whose loop iteration has run {:?} gets no new connections and its queued ones are taken; stalls counted past {:?})",
        builder.steering,
        builder.takeover(),
        builder.stall_threshold
    );
    report.connection_caps = caps_in_words(
        builder.max_connections,
        builder.net.max_connections_per_shard,
    );
    if builder.print_report {
        eprint!("{report}");
    }
    let watchdog = watchdog::spawn(
        remotes.clone(),
        control.clone(),
        builder.stall_limits(),
        steer.clone(),
        mesh_shared.clone(),
    )
    .map_err(|e| Error::io("spawning the stall detector", e))?;
    // Every shard runs: ready.
    control.readiness.set_serving();
    let signal_thread = if builder.handle_signals {
        Some(
            signals::spawn(control.clone())
                .map_err(|e| Error::io("spawning the signal thread", e))?,
        )
    } else {
        None
    };
    let mut handle = ServerHandle::new(
        control,
        threads,
        blocking,
        report,
        mesh_shared,
        steer,
        vec![Some(watchdog), signal_thread, admin_thread],
    );
    handle.set_admin_dup(admin_dup);
    Ok(handle)
}

struct ShardParts {
    info: ShardInfo,
    remote: Arc<ShardRemote>,
    mesh: MeshShard,
    blocking: BlockingPool,
    control: Arc<ServerControl>,
    builder: ServerBuilder,
    steer: Arc<SteerShared>,
}

fn shard_main<Fut>(
    parts: ShardParts,
    setup: &Setup<Fut>,
    ready: mpsc::Sender<Result<ShardReport, Error>>,
) -> Result<(), Error>
where
    Fut: Future<Output = ()> + 'static,
{
    let ShardParts {
        info,
        remote,
        mesh,
        blocking,
        control,
        builder,
        steer,
    } = parts;
    let mut pin_error = None;
    if let Some(cpu) = info.cpu
        && !core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
    {
        pin_error = Some(format!(
            "shard {} could not be pinned to CPU {cpu}; it runs unpinned",
            info.id
        ));
    }
    let built = builder
        .driver_choice()
        .and_then(|choice| Driver::new(&builder.ring, choice));
    let (driver, driver_fallback) = match built {
        Ok(built) => built,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    if let Some(fd) = driver.msg_ring_fd() {
        remote.set_ring_fd(fd);
    }
    remote.set_tid(sys::cpu::current_tid());
    let features = driver.features().clone();
    let driver_kind = driver.kind();
    // Each layer's state, lowest first; the guards clear them in the reverse order.
    let core = Rc::new(Core::new(info.id, info.count, info.cpu, remote, driver));
    let _core = CORE.enter(core.clone());
    let timers = Rc::new(Timers::new(Clock::system()));
    let _timers = TIMERS.enter(timers.clone());
    let mesh = Rc::new(mesh);
    let _mesh = MESH.enter(mesh.clone());
    let _pool = POOL.enter(Rc::new(blocking));
    let net = Rc::new(NetShard::new(core.clone(), builder.net.clone(), steer));
    let _net = NET.enter(net.clone());
    let _registry = REGISTRY.enter(Rc::new(RefCell::default()));
    let _readiness = READINESS.enter(Rc::new(control.readiness.clone()));
    let stop = Rc::new(ShardStop::new(control.clone()));
    let _stop = STOP.enter(stop.clone());
    let mut shard = ShardLoop::new(core.clone(), timers, mesh.clone(), net, stop);
    // The init hook first, so its state is in place before any connection is served; what
    // it spawns is a background task.
    let initialised = match &builder.on_shard_start.0 {
        Some(hook) => {
            core.in_background.set(true);
            let result = hook(info);
            core.in_background.set(false);
            result
        }
        None => Ok(()),
    };
    match initialised.and_then(|()| setup(info)) {
        Ok(main) => {
            core.spawn(main);
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            // Close what setup may have opened before returning.
            control.stop_within(std::time::Duration::ZERO);
            let _ = shard.run();
            core.drop_all_tasks();
            return Ok(());
        }
    }
    let _ = ready.send(Ok(ShardReport {
        id: info.id,
        cpu: info.cpu,
        features,
        driver: driver_kind,
        driver_fallback,
        pin_error,
    }));
    drop(ready);
    let result = shard.run().map_err(|source| Error::Shard {
        shard: info.id,
        source,
    });
    // Tasks hold `Rc`s of the shard's state; dropping them breaks the cycles so the driver
    // and its fds close.
    core.drop_all_tasks();
    // Messages that came too late to run: dropped now, each tells its caller `Closed`
    // (instead of waiting for the last sender of this inbox to go).
    mesh.drop_undelivered();
    if result.is_err() {
        // A shard that cannot go on takes the server down cleanly rather than silently.
        control.stop_within(std::time::Duration::ZERO);
    }
    result
}

/// The connection caps for the startup report.
fn caps_in_words(global: Option<usize>, per_shard: Option<usize>) -> String {
    let global = global.map_or_else(|| "none".to_string(), |n| n.to_string());
    let per_shard = per_shard.map_or_else(|| "none".to_string(), |n| n.to_string());
    format!(
        "max {global} in all, {per_shard} per shard (at a cap: accepting pauses, clients wait in the listen backlog)"
    )
}
