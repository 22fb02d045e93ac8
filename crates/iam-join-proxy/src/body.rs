//! Body wrappers: one that keeps something alive until a response body is done (a connection's
//! in-flight mark, an upstream slot), and one that watches a client's request body as it
//! streams to the upstream (when it ended, and whether the client stalled).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::forward::BoxError;

/// `B`, holding `T` until the body is dropped.
#[derive(Debug)]
pub(crate) struct HeldBody<B, T> {
    inner: B,
    _held: T,
}

impl<B, T> HeldBody<B, T> {
    /// `inner`, keeping `held` alive as long as it.
    pub(crate) fn new(inner: B, held: T) -> Self {
        Self { inner, _held: held }
    }
}

impl<B: Body + Unpin, T: Unpin> Body for HeldBody<B, T> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the proxy learns about a request body while the upstream reads it.
#[derive(Debug, Default)]
pub(crate) struct BodyProgress {
    finished: AtomicBool,
    stalled: AtomicBool,
    done: Notify,
}

impl BodyProgress {
    /// Resolves once the whole body has been read (or has failed).
    pub(crate) async fn finished(&self) {
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            done.await;
        }
    }

    /// Whether the client paused longer than allowed.
    pub(crate) fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.done.notify_waiters();
    }
}

/// A client's request body on its way to the upstream: fails with an error when the client
/// pauses longer than `pause` between two chunks, and reports its end to [`BodyProgress`].
#[derive(Debug)]
pub(crate) struct WatchedBody<B> {
    inner: B,
    pause: Duration,
    timer: Pin<Box<Sleep>>,
    progress: Arc<BodyProgress>,
}

/// The client paused its request body for longer than `upstream.client_body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the client paused its request body for longer than {0:?}")]
pub(crate) struct ClientBodyStalled(Duration);

impl<B: Body> WatchedBody<B> {
    pub(crate) fn new(inner: B, pause: Duration) -> (Self, Arc<BodyProgress>) {
        let progress = Arc::new(BodyProgress::default());
        if inner.is_end_stream() {
            // An empty body may never be polled at all.
            progress.finish();
        }
        let body = Self {
            inner,
            pause,
            timer: Box::pin(tokio::time::sleep(pause)),
            progress: Arc::clone(&progress),
        };
        (body, progress)
    }
}

impl<B> Body for WatchedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.progress.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + this.pause;
                this.timer.as_mut().reset(next);
                if this.inner.is_end_stream() {
                    this.progress.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.progress.finish();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.progress.stalled.store(true, Ordering::Release);
                    this.progress.finish();
                    Poll::Ready(Some(Err(Box::new(ClientBodyStalled(this.pause)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
