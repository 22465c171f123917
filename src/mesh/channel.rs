//! Typed, bounded point-to-point queues between shards.

use std::sync::Arc;

use super::MeshError;
use crate::task;

/// One bounded queue per shard for messages of type `T`. Make it before the server starts,
/// clone it into every shard; each shard receives on its own queue and sends to any.
pub struct Channel<T> {
    queues: Arc<Vec<(flume::Sender<T>, flume::Receiver<T>)>>,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            queues: self.queues.clone(),
        }
    }
}

impl<T: Send + 'static> Channel<T> {
    /// Queues for `shards` shards, each holding at most `capacity` messages.
    pub fn new(shards: usize, capacity: usize) -> Self {
        Channel {
            queues: Arc::new(
                (0..shards)
                    .map(|_| flume::bounded(capacity.max(1)))
                    .collect(),
            ),
        }
    }

    /// Sends to shard `target`, waiting while its queue is full.
    pub async fn send_to(&self, target: usize, message: T) -> Result<(), MeshError> {
        let (tx, _) = self
            .queues
            .get(target)
            .ok_or(MeshError::NoSuchShard(target))?;
        tx.send_async(message).await.map_err(|_| MeshError::Closed)
    }

    /// Sends to shard `target`, failing with [`MeshError::Full`] instead of waiting.
    pub fn try_send_to(&self, target: usize, message: T) -> Result<(), MeshError> {
        let (tx, _) = self
            .queues
            .get(target)
            .ok_or(MeshError::NoSuchShard(target))?;
        tx.try_send(message).map_err(|e| match e {
            flume::TrySendError::Full(_) => MeshError::Full,
            flume::TrySendError::Disconnected(_) => MeshError::Closed,
        })
    }

    /// Receives the next message for the current shard.
    pub async fn recv(&self) -> Result<T, MeshError> {
        let id = task::current_shard_id().ok_or(MeshError::Closed)?;
        let (_, rx) = self.queues.get(id).ok_or(MeshError::NoSuchShard(id))?;
        rx.recv_async().await.map_err(|_| MeshError::Closed)
    }

    /// Takes a message for the current shard if one is queued.
    pub fn try_recv(&self) -> Option<T> {
        let id = task::current_shard_id()?;
        self.queues.get(id)?.1.try_recv().ok()
    }

    /// Messages queued for shard `target`.
    pub fn len(&self, target: usize) -> usize {
        self.queues.get(target).map_or(0, |(tx, _)| tx.len())
    }

    /// True when shard `target`'s queue is empty.
    pub fn is_empty(&self, target: usize) -> bool {
        self.len(target) == 0
    }
}
