//! `Op<T>`: a task awaiting one operation that owns memory (connect, timeout, and the file
//! ops to come). The one lifecycle every such op follows lives in the driver's op table
//! (`driver::uring::lifecycle`); this is its future, generic over the op:
//!
//! - `Op::submit` hands the op to the driver, which keeps it until its terminal completion;
//! - polling stores the task's waker, or returns the result together with the op (its
//!   buffers, its fd) once the completion came;
//! - dropping the future early parks the op in the table and asks the kernel to cancel it:
//!   the op's memory is freed only on its terminal completion, so cancellation is safe.

use std::{
    future::Future,
    marker::PhantomData,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use super::Core;
use crate::driver::{
    Token,
    uring::{
        lifecycle::Route,
        op::{Cancel, OwnedOp},
    },
};

/// The future of one owned op: `(result, op)`, where `result` is the kernel's (`-errno` on
/// failure) and `op` gives back what the op owned.
#[must_use = "an op does nothing useful unless awaited"]
pub(crate) struct Op<T: OwnedOp> {
    core: Rc<Core>,
    /// `None` once the result was handed out.
    token: Option<Token>,
    _op: PhantomData<fn() -> T>,
}

impl<T: OwnedOp> Op<T> {
    /// Submits `op` on `core`'s driver.
    pub(crate) fn submit(core: Rc<Core>, op: T) -> Self {
        let token = core.driver.borrow_mut().submit_owned(op, Route::Await);
        Op {
            core,
            token: Some(token),
            _op: PhantomData,
        }
    }
}

impl<T: OwnedOp> Future for Op<T> {
    type Output = (i32, T);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, T)> {
        let token = self.token.expect("`Op` polled after it completed");
        let polled = self
            .core
            .driver
            .borrow_mut()
            .ops_mut()
            .poll::<T>(token, cx.waker())
            .expect("an awaited op stays in the op table until its future takes it");
        if polled.is_ready() {
            self.token = None;
        }
        polled
    }
}

impl<T: OwnedOp> Drop for Op<T> {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        // The driver is borrowed only for the length of a call; a drop from inside one (not
        // a path percore takes) leaves the op running to its end, still owned by the table.
        let Ok(mut driver) = self.core.driver.try_borrow_mut() else {
            return;
        };
        if driver.ops_mut().park(token) {
            driver.submit(Cancel { target: token }, Token::IGNORE);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{
        driver::uring::op::Timeout,
        future::{Either, select},
        metrics::stats,
        server::Server,
        task::{CORE, yield_now},
        time::sleep,
    };

    /// Runs `body` as the only task of a one-shard server and returns its output.
    fn on_a_shard<T: Send + 'static>(
        body: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = T>>> + Send + Sync + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let body = std::sync::Arc::new(body);
        let server = Server::builder()
            .shards(1)
            .print_report(false)
            .start(move |_| {
                let tx = tx.lock().unwrap().clone();
                let body = body.clone();
                Ok(async move {
                    let _ = tx.send(body().await);
                })
            })
            .expect("a one-shard server starts");
        let out = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the task answers within 10 s");
        server.stop();
        server.join().expect("clean stop");
        out
    }

    #[test]
    fn an_awaited_timeout_completes_with_etime_and_frees_its_slot() {
        let (result, waited, in_flight) = on_a_shard(|| {
            Box::pin(async {
                let start = Instant::now();
                let (result, _op) =
                    Op::submit(CORE.current(), Timeout::new(Duration::from_millis(20))).await;
                (result, start.elapsed(), stats().ops_in_flight)
            })
        });
        assert_eq!(result, -libc::ETIME);
        assert!(waited >= Duration::from_millis(20), "waited {waited:?}");
        assert_eq!(in_flight, 0);
    }

    #[test]
    fn a_dropped_op_is_parked_cancelled_and_released_by_its_terminal_completion() {
        let (parked, released) = on_a_shard(|| {
            Box::pin(async {
                let op = Op::submit(CORE.current(), Timeout::new(Duration::from_secs(60)));
                let raced = select(op, sleep(Duration::from_millis(5))).await;
                assert!(matches!(raced, Either::Right(())), "the sleep wins");
                // The op was dropped: it stays in the table until the cancel's completion.
                let parked = stats().ops_in_flight;
                // Each yield lets the loop submit the cancel and reap what completed.
                for _ in 0..1000 {
                    if stats().ops_in_flight == 0 {
                        break;
                    }
                    yield_now().await;
                }
                (parked, stats().ops_in_flight)
            })
        });
        assert_eq!(
            parked, 1,
            "a dropped op stays owned by the driver until it completes"
        );
        assert_eq!(released, 0, "the cancel's terminal completion releases it");
    }
}
