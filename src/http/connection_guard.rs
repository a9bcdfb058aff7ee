//! No connection may stay open without a request in progress for longer than the keep-alive
//! period and a request head's time together (matrix R36). actix-http 3 times the head of a
//! connection's *first* request (`client_request_timeout`) and an idle keep-alive connection
//! (`keep_alive`), but the keep-alive timer stops at the first byte of the next request and no
//! head timer starts for it: a client that completed one request and then sent the next
//! request's head a byte at a time kept its connection for ever.
//!
//! Every connection is watched: [`on_connect`] notes it, [`track`] counts the requests in
//! progress on it (from dispatch until the last byte of a response body over 64 KiB is
//! written, so a long download is in progress all along; a smaller one goes out in one
//! write), and a timer closes the socket (`shutdown(2)`) once no request has been in progress
//! for [`STUCK_AFTER`]. A legitimate connection never gets there: actix closes an idle one
//! after `keep_alive`, and a head sent in time is dispatched.

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use bytes::Bytes;
use std::any::Any;
use std::cell::Cell;
use std::os::fd::{AsRawFd as _, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// How long actix keeps an idle connection open between requests.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How long a client has to send a request's head (actix: the first request's only).
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may go without a request in progress before it is closed.
pub const STUCK_AFTER: Duration = KEEP_ALIVE.saturating_add(CLIENT_REQUEST_TIMEOUT);

/// One connection's activity (connections live on one worker thread, hence `Rc`/`Cell`).
#[derive(Debug)]
struct Activity {
    /// Requests dispatched whose response is not yet written.
    in_flight: Cell<usize>,
    /// When a request last started or finished (or the connection opened).
    last: Cell<Instant>,
    /// The socket, and its inode, to make sure the descriptor still names it when closing.
    fd: RawFd,
    inode: u64,
}

/// The connection data [`on_connect`] leaves for [`track`].
#[derive(Debug, Clone)]
struct Watched(Rc<Activity>);

/// The inode of the open file `fd`, if it is open.
fn inode_of(fd: RawFd) -> Option<u64> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat(2) writes a `stat` into the buffer it is given, or fails.
    let status = unsafe { libc::fstat(fd, stat.as_mut_ptr()) };
    // SAFETY: on success the buffer was written.
    (status == 0).then(|| unsafe { stat.assume_init() }.st_ino)
}

/// `HttpServer::on_connect`: starts watching a plain TCP connection.
pub fn on_connect(connection: &dyn Any, extensions: &mut Extensions) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let fd = stream.as_raw_fd();
    let Some(inode) = inode_of(fd) else {
        return;
    };
    let activity = Rc::new(Activity {
        in_flight: Cell::new(0),
        last: Cell::new(Instant::now()),
        fd,
        inode,
    });
    let watch = Rc::downgrade(&activity);
    extensions.insert(Watched(activity));
    actix_web::rt::spawn(close_when_stuck(watch, STUCK_AFTER));
}

/// When to look at the connection next: `after` past its last activity, or, while a request
/// is in progress (which may last any time), `after` from now — never in the past unless the
/// connection may be stuck, so the watch never spins.
fn next_check(activity: &Activity, now: Instant, after: Duration) -> Instant {
    if activity.in_flight.get() > 0 {
        now + after
    } else {
        activity.last.get() + after
    }
}

/// Whether, at `now`, the connection has had no request in progress for `after`.
fn is_stuck(activity: &Activity, now: Instant, after: Duration) -> bool {
    activity.in_flight.get() == 0 && now.saturating_duration_since(activity.last.get()) >= after
}

/// Sleeps until the connection could be stuck, and closes it if it is; ends when the
/// connection is gone (its data dropped with it).
async fn close_when_stuck(watch: Weak<Activity>, after: Duration) {
    loop {
        let Some(deadline) = watch
            .upgrade()
            .map(|a| next_check(&a, Instant::now(), after))
        else {
            return;
        };
        tokio::time::sleep_until(deadline).await;
        let Some(activity) = watch.upgrade() else {
            return;
        };
        if is_stuck(&activity, Instant::now(), after) {
            // The connection's data is alive, so its socket is open; the inode check guards
            // against ever touching a descriptor that was closed and reused meanwhile.
            if inode_of(activity.fd) == Some(activity.inode) {
                tracing::debug!(
                    stuck_for = ?activity.last.get().elapsed(),
                    "closing a connection with no request in progress"
                );
                // SAFETY: shutdown(2) on the connection's own, open socket; the connection
                // then reads end-of-stream and ends as if the client had gone.
                unsafe { libc::shutdown(activity.fd, libc::SHUT_RDWR) };
            }
            return;
        }
    }
}

/// A request in progress on a watched connection, until dropped.
#[derive(Debug)]
pub struct InProgress(Rc<Activity>);

impl InProgress {
    fn start(request: &ServiceRequest) -> Option<Self> {
        let activity = request.conn_data::<Watched>()?.0.clone();
        activity.in_flight.set(activity.in_flight.get() + 1);
        activity.last.set(Instant::now());
        Some(Self(activity))
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
        self.0.last.set(Instant::now());
    }
}

/// Marks `request` in progress; [`finish`] keeps it so until its response body is written.
pub fn track(request: &ServiceRequest) -> Option<InProgress> {
    InProgress::start(request)
}

/// Bodies up to this size go out in one write and are not tracked (they keep actix's
/// single-buffer fast path); the request ends with its response head.
const UNTRACKED_BODY_BYTES: u64 = 64 * 1024;

/// Hands the request's [`InProgress`] to its response body, which drops it once written;
/// a small body needs no tracking.
pub fn finish<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
    progress: Option<InProgress>,
) -> ServiceResponse<BoxBody> {
    let response = response.map_into_boxed_body();
    let small = match response.response().body().size() {
        BodySize::None => true,
        BodySize::Sized(n) => n <= UNTRACKED_BODY_BYTES,
        BodySize::Stream => false,
    };
    match progress {
        Some(progress) if !small => response.map_body(|_, body| {
            BoxBody::new(Tracked {
                body,
                _progress: progress,
            })
        }),
        _ => response,
    }
}

/// A response body that keeps its request in progress while it is being written.
struct Tracked {
    body: BoxBody,
    _progress: InProgress,
}

impl MessageBody for Tracked {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::os::unix::net::UnixStream;

    /// A watched socket whose last activity is now.
    fn activity(fd: RawFd, in_flight: usize) -> Rc<Activity> {
        Rc::new(Activity {
            in_flight: Cell::new(in_flight),
            last: Cell::new(Instant::now()),
            fd,
            inode: inode_of(fd).expect("an open socket"),
        })
    }

    /// The watch looks again only in the future while a request is in progress, however long
    /// ago it started (it used to spin on a deadline in the past), and at the end of the idle
    /// period otherwise.
    #[test]
    fn the_next_check_is_never_in_the_past_while_a_request_is_in_progress() {
        let (socket, _peer) = UnixStream::pair().expect("socket pair");
        let after = Duration::from_secs(40);
        let an_hour_later = Instant::now() + Duration::from_secs(3600);
        let busy = activity(socket.as_raw_fd(), 1);
        assert!(next_check(&busy, an_hour_later, after) > an_hour_later);
        assert!(!is_stuck(&busy, an_hour_later, after));
        let idle = activity(socket.as_raw_fd(), 0);
        assert!(next_check(&idle, an_hour_later, after) <= an_hour_later);
        assert!(is_stuck(&idle, an_hour_later, after));
        assert!(!is_stuck(&idle, idle.last.get() + after / 2, after));
    }

    /// A large or streamed response body keeps its request in progress until the body is
    /// dropped (written or abandoned); a small one ends it with the response head.
    #[actix_web::test]
    async fn a_large_body_keeps_its_request_in_progress_until_written() {
        let (socket, _peer) = UnixStream::pair().expect("socket pair");
        let watched = activity(socket.as_raw_fd(), 0);
        let respond = |body: Vec<u8>| {
            let request = actix_web::test::TestRequest::default().to_srv_request();
            let progress = InProgress(watched.clone());
            watched.in_flight.set(watched.in_flight.get() + 1);
            finish(
                request.into_response(actix_web::HttpResponse::Ok().body(body)),
                Some(progress),
            )
        };
        let large = respond(vec![0u8; 1 << 20]);
        assert_eq!(watched.in_flight.get(), 1, "a 1 MiB body is being written");
        drop(large);
        assert_eq!(watched.in_flight.get(), 0, "written, the request is over");
        let small = respond(b"{}".to_vec());
        assert_eq!(watched.in_flight.get(), 0, "a small body is not tracked");
        drop(small);
        assert_eq!(watched.in_flight.get(), 0);
    }

    /// A connection idle past the limit is shut down (its peer reads end-of-stream); one with
    /// a request in progress is left alone; a connection already gone ends the watch.
    #[tokio::test]
    async fn a_stuck_connection_is_shut_down_and_a_busy_one_is_not() {
        let after = Duration::from_millis(100);
        let (socket, mut peer) = UnixStream::pair().expect("socket pair");
        let stuck = activity(socket.as_raw_fd(), 0);
        close_when_stuck(Rc::downgrade(&stuck), after).await;
        let mut buffer = [0u8; 8];
        assert_eq!(peer.read(&mut buffer).expect("end of stream"), 0);

        let (socket, peer) = UnixStream::pair().expect("socket pair");
        let busy = activity(socket.as_raw_fd(), 1);
        let watch = close_when_stuck(Rc::downgrade(&busy), after);
        let waited = tokio::time::timeout(after * 3, watch).await;
        assert!(
            waited.is_err(),
            "the watch ended while a request was in progress"
        );
        peer.set_nonblocking(true).expect("non-blocking");
        let mut buffer = [0u8; 8];
        let open = (&peer).read(&mut buffer);
        assert!(
            matches!(&open, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the busy connection was closed: {open:?}"
        );

        let gone = Rc::downgrade(&activity(socket.as_raw_fd(), 0));
        close_when_stuck(gone, after).await;
    }
}
