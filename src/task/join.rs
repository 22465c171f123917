//! `JoinHandle`: the output of a spawned task, or why there is none.

use std::{
    cell::RefCell,
    fmt,
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

/// Why a task produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The task panicked; the message is the panic payload when it was a string.
    Panicked(String),
    /// The shard stopped (forced past its drain deadline) before the task finished.
    Cancelled,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked(msg) => write!(f, "task panicked: {msg}"),
            JoinError::Cancelled => f.write_str("task was cancelled when its shard stopped"),
        }
    }
}

impl std::error::Error for JoinError {}

pub(crate) enum JoinState<T> {
    Running(Option<Waker>),
    Done(Result<T, JoinError>),
    Taken,
}

pub(crate) type JoinSlot<T> = Rc<RefCell<JoinState<T>>>;

pub(crate) fn complete<T>(slot: &JoinSlot<T>, result: Result<T, JoinError>) {
    let previous = std::mem::replace(&mut *slot.borrow_mut(), JoinState::Done(result));
    if let JoinState::Running(Some(waker)) = previous {
        waker.wake();
    }
}

/// Awaits a task spawned on the current shard. Dropping it detaches the task, which keeps
/// running.
pub struct JoinHandle<T> {
    pub(crate) slot: JoinSlot<T>,
}

impl<T> JoinHandle<T> {
    /// True once the task has finished (with output, panic or cancellation).
    pub fn is_finished(&self) -> bool {
        !matches!(*self.slot.borrow(), JoinState::Running(_))
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.borrow_mut();
        match &mut *state {
            JoinState::Running(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            JoinState::Done(_) => match std::mem::replace(&mut *state, JoinState::Taken) {
                JoinState::Done(result) => Poll::Ready(result),
                _ => unreachable!("matched Done above"),
            },
            JoinState::Taken => Poll::Ready(Err(JoinError::Cancelled)),
        }
    }
}

/// Guards a running task's slot: if the task is dropped before it completes (forced stop),
/// the handle learns it was cancelled.
pub(crate) struct CancelOnDrop<T>(pub(crate) JoinSlot<T>);

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        let running = matches!(*self.0.borrow(), JoinState::Running(_));
        if running {
            let error = match PANIC_MESSAGE.with(|m| m.borrow().clone()) {
                Some(msg) => JoinError::Panicked(msg),
                None => JoinError::Cancelled,
            };
            complete(&self.0, Err(error));
        }
    }
}

thread_local! {
    /// Set by the run loop while it drops a task that panicked, so its handle says why.
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Drops a task that panicked, telling its `JoinHandle` the panic message.
pub(crate) fn drop_panicked<D>(task: D, message: String) {
    PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(message));
    drop(task);
    PANIC_MESSAGE.with(|m| *m.borrow_mut() = None);
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
