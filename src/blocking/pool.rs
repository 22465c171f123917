//! The pool itself: eagerly started worker threads draining one bounded
//! flume queue.

use std::{
    any::Any,
    future::Future,
    io, mem,
    panic::{self, AssertUnwindSafe},
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
    thread::{self, JoinHandle, ThreadId},
    time::{Duration, Instant},
};

use flume::{
    Receiver, Sender, TrySendError,
    r#async::{RecvFut, SendFut},
};

use super::{
    config::BlockingConfig,
    error::{BlockingError, SubmitError},
};

/// A unit of work for the pool.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// A snapshot of the pool's counters, for metrics.
///
/// The counters are read independently, so a snapshot taken while jobs run
/// need not be consistent across fields. `completed` is bumped after a job
/// returns, so it may lag the delivery of that job's result by an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockingStats {
    /// Worker threads started since the pool was created.
    pub threads_started: u64,
    /// Jobs running right now.
    pub busy: u64,
    /// Jobs waiting in the queue for a thread.
    pub queued: u64,
    /// Jobs that have finished, panicked ones included.
    pub completed: u64,
    /// Jobs that panicked (a subset of `completed`).
    pub panicked: u64,
}

#[derive(Default)]
struct Counters {
    threads_started: AtomicU64,
    busy: AtomicU64,
    completed: AtomicU64,
    panicked: AtomicU64,
}

/// State shared by every handle; the workers hold none of it, so the last
/// handle's drop is what closes the queue.
struct Inner {
    /// `None` once shut down. Read-locked by submitters (shared, and never
    /// held across an await), write-locked once by shutdown.
    sender: RwLock<Option<Sender<Job>>>,
    /// Kept only to report the queue length after the sender is gone.
    receiver: Receiver<Job>,
    counters: Arc<Counters>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Each worker sends its id here as it leaves its loop, so `shutdown`
    /// can wait with a deadline (`JoinHandle::join` has none).
    exited: Receiver<ThreadId>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue without joining: the workers finish what is
        // queued and exit on their own, and dropping their handles detaches
        // them, so dropping a pool never blocks the dropping thread.
        close(&self.sender);
    }
}

fn close(sender: &RwLock<Option<Sender<Job>>>) {
    // No code panics while holding this lock, so poisoning cannot carry a
    // broken invariant; the value is a plain Option either way.
    drop(
        sender
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
    );
}

/// Result of a non-blocking enqueue attempt.
enum Enqueue {
    Queued,
    /// The queue is full: the job comes back with a sender to wait on.
    Full(Job, Sender<Job>),
    ShutDown,
}

/// A bounded pool of threads for blocking or CPU-heavy work. Cheap to clone;
/// every clone submits to the same threads.
#[derive(Clone)]
pub struct BlockingPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool")
            .field("stats", &self.stats())
            .finish()
    }
}

impl BlockingPool {
    /// Validates `config` and starts all `config.threads` workers now
    /// (eagerly: a failure to spawn surfaces here, not on a request path).
    pub fn new(config: BlockingConfig) -> io::Result<Self> {
        config.validate()?;
        let (sender, receiver) = flume::bounded::<Job>(config.queue_capacity);
        let (exited_tx, exited) = flume::unbounded();
        let counters = Arc::new(Counters::default());
        let mut workers = Vec::with_capacity(config.threads);
        for _ in 0..config.threads {
            let jobs = receiver.clone();
            let worker_counters = Arc::clone(&counters);
            let exit = ExitSignal(exited_tx.clone());
            let nice_increment = config.nice_increment;
            let spawned = thread::Builder::new()
                .name(config.thread_name.clone())
                .spawn(move || {
                    lower_priority(nice_increment);
                    worker_loop(jobs, worker_counters, exit)
                });
            match spawned {
                Ok(handle) => {
                    counters.threads_started.fetch_add(1, Relaxed);
                    workers.push(handle);
                }
                // Dropping `sender` here disconnects the queue, so the
                // threads already started exit by themselves (detached).
                Err(err) => return Err(err),
            }
        }
        Ok(BlockingPool {
            inner: Arc::new(Inner {
                sender: RwLock::new(Some(sender)),
                receiver,
                counters,
                workers: Mutex::new(workers),
                exited,
            }),
        })
    }

    fn enqueue(&self, job: Job) -> Enqueue {
        let guard = self
            .inner
            .sender
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = guard.as_ref() else {
            return Enqueue::ShutDown;
        };
        match sender.try_send(job) {
            Ok(()) => Enqueue::Queued,
            Err(TrySendError::Full(job)) => Enqueue::Full(job, sender.clone()),
            // Unreachable while `Inner` holds a receiver; treated as shut down.
            Err(TrySendError::Disconnected(_)) => Enqueue::ShutDown,
        }
    }

    /// Queues `job` without waiting: `Full` when the queue has no room,
    /// `ShutDown` after [`shutdown`](Self::shutdown). A panic in the job is
    /// caught, counted and logged; the thread survives.
    pub fn try_submit(&self, job: Job) -> Result<(), SubmitError> {
        match self.enqueue(job) {
            Enqueue::Queued => Ok(()),
            Enqueue::Full(..) => Err(SubmitError::Full),
            Enqueue::ShutDown => Err(SubmitError::ShutDown),
        }
    }

    /// Queues `job`, waiting asynchronously for room when the queue is full
    /// (backpressure on the submitting task, not on the shard). Nothing is
    /// queued until the future is first polled; dropping it while it waits
    /// drops the job unrun.
    pub async fn submit(&self, job: Job) -> Result<(), SubmitError> {
        match self.enqueue(job) {
            Enqueue::Queued => Ok(()),
            Enqueue::Full(job, sender) => sender
                .into_send_async(job)
                .await
                .map_err(|_| SubmitError::ShutDown),
            Enqueue::ShutDown => Err(SubmitError::ShutDown),
        }
    }

    /// Runs `f` on a pool thread; the returned future resolves to its result.
    ///
    /// The job is queued right away when there is room; otherwise the future
    /// holds it and waits for room when polled. A panic in `f` becomes
    /// [`BlockingError::Panicked`]. Dropping the future: a job that is queued
    /// or running still runs to completion and its result is discarded on
    /// the pool thread; a job still waiting for room is dropped unrun.
    pub fn spawn_blocking<F, R>(&self, f: F) -> Blocking<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // Capacity 1: exactly one message is ever sent, so the send never
        // waits.
        let (result_tx, result_rx) = flume::bounded(1);
        let counters = Arc::clone(&self.inner.counters);
        let job: Job = Box::new(move || {
            let outcome = panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
                counters.panicked.fetch_add(1, Relaxed);
                BlockingError::Panicked(panic_message(payload.as_ref()))
            });
            // Fails only when the `Blocking` future was dropped; the result
            // is then dropped here, which is what "discarded" means.
            let _ = result_tx.send(outcome);
        });
        let state = match self.enqueue(job) {
            Enqueue::Queued => State::Waiting(result_rx.into_recv_async()),
            Enqueue::Full(job, sender) => State::Queueing {
                send: sender.into_send_async(job),
                result: result_rx,
            },
            Enqueue::ShutDown => State::Failed(BlockingError::ShutDown),
        };
        Blocking { state }
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> BlockingStats {
        let c = &self.inner.counters;
        BlockingStats {
            threads_started: c.threads_started.load(Relaxed),
            busy: c.busy.load(Relaxed),
            queued: self.inner.receiver.len() as u64,
            completed: c.completed.load(Relaxed),
            panicked: c.panicked.load(Relaxed),
        }
    }

    /// Stops accepting jobs, lets the queued ones finish, and joins the
    /// threads until `deadline` has passed. Threads still running then are
    /// detached (they finish the queue in the background) and reported with
    /// `tracing::warn!`. Only the first call waits; later ones return at once.
    pub fn shutdown(&self, deadline: Duration) {
        let until = Instant::now().checked_add(deadline);
        close(&self.inner.sender);
        let workers = mem::take(
            &mut *self
                .inner
                .workers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut exited = Vec::with_capacity(workers.len());
        while exited.len() < workers.len() {
            let next = match until {
                Some(until) => self.inner.exited.recv_deadline(until).ok(),
                // A deadline too far to represent: wait without one.
                None => self.inner.exited.recv().ok(),
            };
            match next {
                Some(id) => exited.push(id),
                None => break,
            }
        }
        let mut detached = 0usize;
        for worker in workers {
            if exited.contains(&worker.thread().id()) {
                // The thread has left its loop, so this join is immediate.
                if worker.join().is_err() {
                    tracing::warn!("blocking pool worker exited by panic");
                }
            } else {
                detached += 1;
            }
        }
        if detached > 0 {
            tracing::warn!(
                detached,
                deadline_ms = deadline.as_millis() as u64,
                "blocking pool shutdown deadline passed; detaching threads still running"
            );
        }
    }
}

/// Tells `shutdown` that a worker has left its loop, even if it unwinds.
struct ExitSignal(Sender<ThreadId>);

impl Drop for ExitSignal {
    fn drop(&mut self) {
        // The receiver is gone only if every pool handle is; nobody waits.
        let _ = self.0.send(thread::current().id());
    }
}

/// Lowers the calling worker's priority by `increment` (see
/// [`BlockingConfig::nice_increment`]); a refusal is a warning, never fatal.
fn lower_priority(increment: u8) {
    if increment == 0 {
        return;
    }
    if let Err(err) = crate::sys::sched::lower_current_thread_priority(increment) {
        tracing::warn!(
            error = %err,
            increment,
            "blocking pool thread keeps the process's priority"
        );
    }
}

fn worker_loop(jobs: Receiver<Job>, counters: Arc<Counters>, _exit: ExitSignal) {
    // `recv` fails only once every sender is gone and the queue is empty,
    // which is how shutdown (or the last handle's drop) reaches the threads.
    while let Ok(job) = jobs.recv() {
        counters.busy.fetch_add(1, Relaxed);
        let outcome = panic::catch_unwind(AssertUnwindSafe(job));
        counters.busy.fetch_sub(1, Relaxed);
        if let Err(payload) = outcome {
            counters.panicked.fetch_add(1, Relaxed);
            tracing::warn!(
                message = %panic_message(payload.as_ref()),
                "blocking pool job panicked"
            );
        }
        counters.completed.fetch_add(1, Relaxed);
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// The result of [`BlockingPool::spawn_blocking`]: resolves to the closure's
/// return value once it has run on a pool thread.
#[must_use = "the job may still run, but its result is lost unless awaited"]
pub struct Blocking<R: 'static> {
    state: State<R>,
}

enum State<R: 'static> {
    /// The queue was full: waiting for room, then for the result.
    Queueing {
        send: SendFut<'static, Job>,
        result: Receiver<Result<R, BlockingError>>,
    },
    /// Queued: waiting for the result.
    Waiting(RecvFut<'static, Result<R, BlockingError>>),
    /// Refused at creation; yielded on the first poll.
    Failed(BlockingError),
    Done,
}

impl<R: 'static> std::fmt::Debug for Blocking<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Queueing { .. } => "queueing",
            State::Waiting(_) => "waiting",
            State::Failed(_) => "failed",
            State::Done => "done",
        };
        f.debug_struct("Blocking").field("state", &state).finish()
    }
}

impl<R: 'static> Future for Blocking<R> {
    type Output = Result<R, BlockingError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin (flume's futures are), so no projection needed.
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Queueing { send, .. } => {
                    let sent = match Pin::new(send).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(sent) => sent,
                    };
                    let State::Queueing { result, .. } = mem::replace(&mut this.state, State::Done)
                    else {
                        unreachable!("matched Queueing above");
                    };
                    if sent.is_err() {
                        return Poll::Ready(Err(BlockingError::ShutDown));
                    }
                    this.state = State::Waiting(result.into_recv_async());
                }
                State::Waiting(recv) => {
                    let received = match Pin::new(recv).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(received) => received,
                    };
                    this.state = State::Done;
                    // Disconnected: the job was dropped without running.
                    return Poll::Ready(received.unwrap_or(Err(BlockingError::ShutDown)));
                }
                State::Failed(_) => {
                    let State::Failed(err) = mem::replace(&mut this.state, State::Done) else {
                        unreachable!("matched Failed above");
                    };
                    return Poll::Ready(Err(err));
                }
                State::Done => panic!("`Blocking` polled after completion"),
            }
        }
    }
}
