//! Small future combinators the kernel and its users need, without a futures dependency.

#![forbid(unsafe_code)]

use std::{
    future::{Future, poll_fn},
    pin::pin,
    task::Poll,
};

/// Which of two futures finished first.
#[derive(Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Waits for the first of two futures; the other is dropped. `a` is polled first, so it
/// wins a tie.
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(value) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(value));
        }
        if let Poll::Ready(value) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(value));
        }
        Poll::Pending
    })
    .await
}

/// Waits for both futures, polled concurrently on the current task, and returns both
/// outputs.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut out_a = None;
    let mut out_b = None;
    poll_fn(|cx| {
        if out_a.is_none()
            && let Poll::Ready(value) = a.as_mut().poll(cx)
        {
            out_a = Some(value);
        }
        if out_b.is_none()
            && let Poll::Ready(value) = b.as_mut().poll(cx)
        {
            out_b = Some(value);
        }
        match (out_a.take(), out_b.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                out_a = a;
                out_b = b;
                Poll::Pending
            }
        }
    })
    .await
}

/// Waits for every future, polled concurrently on the current task, and returns their
/// outputs in the order given. Each wake polls every unfinished future (no per-future
/// wakers), so it suits tens of futures; for many more, [`spawn`](crate::spawn) them and
/// join the handles.
pub async fn join_all<I>(futures: I) -> Vec<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future,
{
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<<I::Item as Future>::Output>> =
        pending.iter().map(|_| None).collect();
    let mut left = pending.len();
    poll_fn(|cx| {
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none()
                && let Poll::Ready(value) = future.as_mut().poll(cx)
            {
                *output = Some(value);
                left -= 1;
            }
        }
        if left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::{
        cell::Cell,
        future::{Future, poll_fn},
        pin::pin,
        rc::Rc,
        task::{Context, Poll, Waker},
    };

    /// A future ready after it was polled `n` times (waking itself each time).
    async fn ready_after(n: u32, value: u32, polls: Rc<Cell<u32>>) -> u32 {
        let mut left = n;
        poll_fn(|cx| {
            polls.set(polls.get() + 1);
            if left == 0 {
                return Poll::Ready(value);
            }
            left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1000 {
            if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                return v;
            }
        }
        panic!("not ready after 1000 polls");
    }

    #[test]
    fn join_all_keeps_order_and_polls_finished_futures_no_more() {
        let polls: Vec<Rc<Cell<u32>>> = (0..3).map(|_| Rc::new(Cell::new(0))).collect();
        let futures = [(3, 30), (0, 10), (1, 20)]
            .into_iter()
            .zip(&polls)
            .map(|((n, v), p)| ready_after(n, v, p.clone()));
        assert_eq!(block_on(super::join_all(futures)), vec![30, 10, 20]);
        // Each future is polled until ready, then never again.
        assert_eq!(
            polls.iter().map(|p| p.get()).collect::<Vec<_>>(),
            vec![4, 1, 2]
        );
        let none: Vec<std::future::Ready<u8>> = Vec::new();
        assert!(block_on(super::join_all(none)).is_empty());
    }

    #[test]
    fn join_waits_for_both() {
        let (a, b) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let out = block_on(super::join(
            ready_after(2, 1, a.clone()),
            ready_after(0, 2, b.clone()),
        ));
        assert_eq!(out, (1, 2));
        assert_eq!((a.get(), b.get()), (3, 1));
    }
}
