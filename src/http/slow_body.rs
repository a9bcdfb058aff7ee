//! A request body must keep arriving (matrix R36, "slow body"). actix-web bounds how long a
//! client may take to send a request's head (`client_request_timeout`) but not its body: a
//! client announcing a body and then sending it a byte at a time held its connection, and the
//! handler waiting on it, for as long as it liked. Every body is read through [`MinRate`]: once
//! a grace period is over, it must have arrived at an average of at least
//! [`MIN_BYTES_PER_SECOND`] since the handler began reading it, or the read fails, the
//! request is answered `400` and the connection (its body unread) is closed. Only time spent
//! waiting on the client counts: a body already buffered is never refused.

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::stream::Stream;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The slowest average rate a body may arrive at once [`GRACE`] is over (Kestrel's
/// `MinRequestBodyDataRate` default).
pub const MIN_BYTES_PER_SECOND: u64 = 240;

/// How long a body may take before the rate applies.
pub const GRACE: Duration = Duration::from_secs(10);

/// Reads the body of `request`, if it has one, through [`MinRate`].
pub fn guard(request: &mut ServiceRequest) {
    let (_, payload) = request.parts_mut();
    let inner = payload.take();
    if matches!(inner, Payload::None) {
        return;
    }
    let guarded: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(MinRate::new(inner));
    request.set_payload(Payload::from(guarded));
}

/// A body stream that fails once its client falls below the minimum rate.
pub struct MinRate<S> {
    inner: S,
    grace: Duration,
    min_bytes_per_second: u64,
    /// When the handler first asked for the body, and the timer of the current deadline.
    clock: Option<(Instant, Pin<Box<Sleep>>)>,
    received: u64,
    done: bool,
}

impl<S> MinRate<S> {
    /// Guards `inner` with [`GRACE`] and [`MIN_BYTES_PER_SECOND`].
    pub fn new(inner: S) -> Self {
        Self::with_limits(inner, GRACE, MIN_BYTES_PER_SECOND)
    }

    /// Guards `inner` with another grace period and rate (at least 1 byte a second).
    pub fn with_limits(inner: S, grace: Duration, min_bytes_per_second: u64) -> Self {
        Self {
            inner,
            grace,
            min_bytes_per_second: min_bytes_per_second.max(1),
            clock: None,
            received: 0,
            done: false,
        }
    }

    /// When the client must have sent more than it has: the grace period, or the time the
    /// bytes received so far buy at the minimum rate, whichever is later.
    fn deadline(&self, started: Instant) -> Instant {
        let bought =
            Duration::from_secs_f64(self.received as f64 / self.min_bytes_per_second as f64);
        started + self.grace.max(bought)
    }
}

impl<S> Stream for MinRate<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let grace = this.grace;
        let (started, _) = this.clock.get_or_insert_with(|| {
            let now = Instant::now();
            (now, Box::pin(tokio::time::sleep_until(now + grace)))
        });
        let started = *started;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received = this.received.saturating_add(chunk.len() as u64);
                let deadline = this.deadline(started);
                if let Some((_, timer)) = &mut this.clock {
                    timer.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                this.done = true;
                Poll::Ready(other)
            }
            Poll::Pending => {
                let expired = match &mut this.clock {
                    Some((_, timer)) => timer.as_mut().poll(cx).is_ready(),
                    None => false,
                };
                if !expired {
                    return Poll::Pending;
                }
                this.done = true;
                Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the request body arrived slower than {} bytes a second",
                        this.min_bytes_per_second
                    ),
                )))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    const GRACE: Duration = Duration::from_millis(300);

    /// A body that stalls fails once the grace period is over; one that arrives well above the
    /// rate is read whole; one that trickles below it fails.
    #[tokio::test]
    async fn a_stalled_or_trickling_body_fails_and_a_steady_one_passes() {
        let stalled = futures_util::stream::pending::<Result<Bytes, PayloadError>>();
        let mut guarded = MinRate::with_limits(stalled, GRACE, 1000);
        let outcome = guarded.next().await;
        assert!(
            matches!(outcome, Some(Err(PayloadError::Io(ref e))) if e.kind() == std::io::ErrorKind::TimedOut),
            "{outcome:?}"
        );
        assert!(guarded.next().await.is_none(), "nothing after the refusal");

        // 1 KiB every 50 ms (about 20 KiB/s) for 20 chunks, against a 1,000 B/s minimum.
        let steady = futures_util::stream::unfold(0u32, |n| async move {
            if n == 20 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok(Bytes::from(vec![b'x'; 1024])), n + 1))
        });
        let mut guarded = MinRate::with_limits(Box::pin(steady), GRACE, 1000);
        let mut total = 0;
        while let Some(chunk) = guarded.next().await {
            total += chunk.expect("a steady body is read").len();
        }
        assert_eq!(total, 20 * 1024);

        // One byte every 50 ms (20 B/s) against the same minimum: refused, never ends.
        let trickle = futures_util::stream::unfold((), |()| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok(Bytes::from_static(b"a")), ()))
        });
        let mut guarded = MinRate::with_limits(Box::pin(trickle), GRACE, 1000);
        let failed = loop {
            match guarded.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => break e,
                None => panic!("the trickle has no end"),
            }
        };
        assert!(matches!(failed, PayloadError::Io(_)), "{failed:?}");
    }
}
