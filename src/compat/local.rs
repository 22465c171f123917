//! `on_shard`: the bridge from code that must be `Send` (an axum handler, a tower layer) to
//! shard-local work that is not (percore's I/O, a hyper client connection, anything holding
//! an `Rc`).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use crate::task::JoinError;

/// Runs `future` as a task of the current shard and returns a `Send` handle to its output.
/// The task starts at once and runs to its end even if the handle is dropped.
///
/// ```no_run
/// # #[cfg(feature = "hyper")]
/// # async fn handler() -> Result<String, percore::JoinError> {
/// // Inside an axum handler: the hyper client and the stream are shard-local.
/// let upstream = "127.0.0.1:8080".parse().unwrap();
/// percore::compat::on_shard(async move {
///     let stream = percore::TcpStream::connect(upstream).await;
///     format!("connected: {}", stream.is_ok())
/// })
/// .await
/// # }
/// ```
pub fn on_shard<F>(future: F) -> OnShard<F::Output>
where
    F: Future + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = flume::bounded(1);
    drop(crate::task::spawn(async move {
        // The receiver may be gone (the caller gave up): the output is dropped then.
        let _ = tx.send(future.await);
    }));
    OnShard {
        rx: rx.into_recv_async(),
    }
}

/// The `Send` handle of an [`on_shard`] task.
pub struct OnShard<T: 'static> {
    rx: flume::r#async::RecvFut<'static, T>,
}

impl<T> Future for OnShard<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map_err(|_| {
            JoinError::Panicked(
                "the on_shard task ended without output (see the shard's log)".into(),
            )
        })
    }
}
