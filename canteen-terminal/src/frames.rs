//! Camera frames posted to the kiosk are decoded one at a time on one thread. While it works,
//! a newer frame replaces the one waiting (whose sender is told it was dropped): the camera
//! shows what is in front of it now, and a burst of frames, honest or hostile, costs the memory
//! and CPU of one decode plus one waiting frame.

use crate::image_input::{self, Budget, ImageError, DEFAULT_DECODER};
use axum::body::Bytes;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A newer frame took this one's place before it was decoded.
    #[error("a newer frame replaced this one")]
    Dropped,
    /// The decoder did not answer within the budget (it finishes in the background).
    #[error("Кадрды өңдеу уақыты бітті / Время на разбор кадра истекло ({0:?})")]
    TooSlow(Duration),
}

type Reply = oneshot::Sender<Result<Vec<String>, ImageError>>;

struct Shared {
    waiting: Mutex<Option<(Bytes, Reply)>>,
    ready: Condvar,
}

/// The queue in front of the decoding thread.
#[derive(Clone)]
pub struct Frames {
    shared: Arc<Shared>,
    budget: Budget,
}

/// How long the thread waits for work before checking that its kiosk still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);

impl Frames {
    pub fn new(budget: Budget) -> Frames {
        let shared = Arc::new(Shared {
            waiting: Mutex::new(None),
            ready: Condvar::new(),
        });
        let weak = Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new()
            .name("frame-decoder".into())
            .spawn(move || work(weak, budget));
        if let Err(e) = spawned {
            tracing::error!("cannot start the frame decoder thread: {e}");
        }
        Frames { shared, budget }
    }

    /// Decodes `frame` (after any frame being decoded now) and returns the QR texts found.
    pub async fn decode(&self, frame: Bytes) -> Result<Vec<String>, FrameError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self
                .shared
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // The replaced frame's sender is dropped here: its request answers `Dropped`.
            *waiting = Some((frame, tx));
        }
        self.shared.ready.notify_one();
        // A frame may wait for the one being decoded, which has the same budget: twice it.
        let limit = self.budget.time * 2 + Duration::from_millis(500);
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(FrameError::Dropped),
            Err(_) => Err(FrameError::TooSlow(self.budget.time)),
        }
    }
}

fn work(shared: Weak<Shared>, budget: Budget) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let job = {
            let waiting = strong.waiting.lock().unwrap_or_else(|p| p.into_inner());
            let (mut waiting, _) = strong
                .ready
                .wait_timeout_while(waiting, IDLE_CHECK, |w| w.is_none())
                .unwrap_or_else(|p| p.into_inner());
            waiting.take()
        };
        drop(strong);
        let Some((frame, reply)) = job else {
            continue;
        };
        if reply.is_closed() {
            continue;
        }
        let result = std::panic::catch_unwind(|| {
            image_input::decode_bytes_within(&frame, DEFAULT_DECODER, &budget)
        })
        .unwrap_or_else(|_| {
            Err(ImageError::Format(
                "the QR decoder failed on this frame".into(),
            ))
        });
        drop(frame);
        let _ = reply.send(result);
    }
}
