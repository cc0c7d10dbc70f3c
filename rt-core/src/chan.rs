//! Channels: Go's `hchan` (chan.go), typed, with `Clone`able handles.
//!
//! A channel is a lock, a ring buffer of `cap` values (none for an unbuffered channel), a
//! `closed` flag and two queues of blocked goroutines: senders waiting for room or a receiver
//! (`sendq`), receivers waiting for a value (`recvq`). A blocked goroutine waits in a
//! [`Sudog`] on its own stack (Go's `sudog`), which names the goroutine and holds the value
//! being sent, or the slot a value is received into.
//!
//! The rules, as in Go:
//! - a send to a waiting receiver hands the value over directly (no buffer in between), and
//!   readies the receiver; otherwise it goes into the buffer if there is room; otherwise the
//!   sender blocks until a receiver takes the value or the channel is closed (then it panics);
//! - a receive from a full buffer with a blocked sender takes the oldest value and moves the
//!   sender's value into the buffer (FIFO order holds); from an unbuffered channel it takes
//!   the sender's value directly; from a closed, drained channel it returns `None` at once;
//! - `close` wakes every blocked receiver (they get `None`) and every blocked sender (they
//!   panic: "send on closed channel"); closing twice panics: "close of closed channel".
//!
//! Invariants (under the lock): `recvq` is non-empty only while the buffer is empty; `sendq`
//! is non-empty only while the buffer is full; both are empty once the channel is closed.
//! A sudog is on at most one queue, and the goroutine that owns it is parked while it is; the
//! waker fills it, takes it off the queue and readies the goroutine, all decided under the
//! lock, so exactly one party completes each operation.
//!
//! Blocking uses [`gopark`] with the channel's lock released by g0 after the goroutine is
//! parked (Go's `chanparkcommit`), which closes the lost-wake-up race.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::fmt;

use crate::g::{WaitReason, G};
use crate::lock::Mutex;
use crate::park::{current_g, gopark, goready};

/// A blocked sender or receiver (Go's `sudog`), on the blocked goroutine's stack.
struct Sudog<T> {
    g: *mut G,
    /// A sender's value (taken by the receiver); a receiver's slot (filled by the sender).
    elem: Option<T>,
    /// Woken by a completed operation (true) or by `close` (false). Go's `sudog.success`.
    success: bool,
}

struct State<T> {
    buf: VecDeque<T>,
    closed: bool,
    recvq: VecDeque<*mut Sudog<T>>,
    sendq: VecDeque<*mut Sudog<T>>,
}

struct HChan<T> {
    cap: usize,
    state: Mutex<State<T>>,
}

// SAFETY: the raw sudog pointers are only dereferenced under the lock by the one party that
// takes them off a queue, while their owner is parked; values of T move between goroutines,
// hence T: Send.
unsafe impl<T: Send> Send for HChan<T> {}
unsafe impl<T: Send> Sync for HChan<T> {}

/// A channel of `T` (Go's `chan T`). Clones are handles to the same channel.
pub struct Chan<T> {
    c: Arc<HChan<T>>,
}

impl<T> Clone for Chan<T> {
    fn clone(&self) -> Self {
        Chan { c: self.c.clone() }
    }
}

impl<T> fmt::Debug for Chan<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Chan(cap {})", self.c.cap)
    }
}

/// Go's `make(chan T, cap)`: `cap == 0` is an unbuffered channel.
pub fn make<T: Send>(cap: usize) -> Chan<T> {
    Chan {
        c: Arc::new(HChan {
            cap,
            state: Mutex::new(State {
                buf: VecDeque::with_capacity(cap),
                closed: false,
                recvq: VecDeque::new(),
                sendq: VecDeque::new(),
            }),
        }),
    }
}

/// What a non-blocking send found (Go: `select` with a `default` case).
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// No receiver waiting and no room: the value comes back.
    Full(T),
    /// The channel is closed (a blocking send would panic): the value comes back.
    Closed(T),
}

/// What a non-blocking receive found.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing to receive yet.
    Empty,
    /// Closed and drained.
    Closed,
}

/// The g0 side of parking on a channel: release its lock (Go's `chanparkcommit`).
fn unlock_chan<T>(_gp: *mut G, lock: usize) -> bool {
    // SAFETY: `lock` is the channel lock the parking goroutine took with `raw_lock`; the
    // goroutine keeps the channel alive (it holds a handle and is blocked in an operation).
    unsafe { (*(lock as *const Mutex<State<T>>)).raw_unlock() };
    true
}

impl<T: Send> Chan<T> {
    /// Go's `cap(ch)`.
    pub fn cap(&self) -> usize {
        self.c.cap
    }

    /// Go's `len(ch)`: values in the buffer.
    pub fn len(&self) -> usize {
        self.c.state.lock().buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Go's `ch <- v`. Blocks until a receiver takes `v` or the buffer has room.
    ///
    /// # Panics
    /// "send on closed channel", if the channel is or becomes closed.
    pub fn send(&self, v: T) {
        let lock = &self.c.state;
        lock.raw_lock();
        // SAFETY: held (raw_lock above) until the unlock below or g0's unlock_chan.
        let st = unsafe { lock.get_locked() };
        match self.try_send_locked(st, v) {
            Ok(Some(gp)) => {
                // SAFETY: held since raw_lock.
                unsafe { lock.raw_unlock() };
                // SAFETY: gp's sudog was taken off recvq under the lock: it is parked and we
                // are its only waker.
                unsafe { goready(gp) };
            }
            Ok(None) => {
                // SAFETY: held since raw_lock.
                unsafe { lock.raw_unlock() };
            }
            Err(TrySendError::Closed(_)) => {
                // SAFETY: held since raw_lock.
                unsafe { lock.raw_unlock() };
                panic!("send on closed channel");
            }
            Err(TrySendError::Full(v)) => {
                let sg = self.block(st, |st| &mut st.sendq, Some(v), WaitReason::ChanSend);
                // Readied: a receiver took the value (success), or close woke us.
                if !sg.success {
                    panic!("send on closed channel");
                }
            }
        }
    }

    /// Blocks the calling goroutine in a sudog on one of the channel's queues until a peer
    /// completes its operation or `close` wakes it, and returns the sudog as the waker left it.
    /// The caller holds the lock (`raw_lock`); g0 releases it once the goroutine is parked.
    fn block(
        &self,
        st: &mut State<T>,
        queue: fn(&mut State<T>) -> &mut VecDeque<*mut Sudog<T>>,
        elem: Option<T>,
        reason: WaitReason,
    ) -> Sudog<T> {
        let lock = &self.c.state;
        let gp = current_g();
        if gp.is_null() {
            // SAFETY: the caller took the lock with raw_lock.
            unsafe { lock.raw_unlock() };
            let op = if reason == WaitReason::ChanSend {
                "send"
            } else {
                "receive"
            };
            panic!("channel {op} would block outside a goroutine");
        }
        let mut sg = Sudog {
            g: gp,
            elem,
            success: false,
        };
        queue(st).push_back(&mut sg);
        gopark(
            Some(unlock_chan::<T>),
            lock as *const Mutex<State<T>> as usize,
            reason,
        );
        // Readied: whoever took the sudog off the queue is done with it.
        sg
    }

    /// Under the lock: completes a send without blocking if it can. `Ok(Some(g))`: handed to
    /// a waiting receiver, which the caller readies after unlocking.
    fn try_send_locked(&self, st: &mut State<T>, v: T) -> Result<Option<*mut G>, TrySendError<T>> {
        if st.closed {
            return Err(TrySendError::Closed(v));
        }
        if let Some(sg) = st.recvq.pop_front() {
            // SAFETY: a sudog on recvq belongs to a parked receiver; off the queue, it is ours
            // to fill until we ready its goroutine.
            unsafe {
                (*sg).elem = Some(v);
                (*sg).success = true;
                return Ok(Some((*sg).g));
            }
        }
        if st.buf.len() < self.c.cap {
            st.buf.push_back(v);
            return Ok(None);
        }
        Err(TrySendError::Full(v))
    }

    /// A send that never blocks (Go: `select { case ch <- v: default: }`).
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let mut st = self.c.state.lock();
        let r = self.try_send_locked(&mut st, v);
        drop(st);
        match r {
            Ok(Some(gp)) => {
                // SAFETY: as in `send`.
                unsafe { goready(gp) };
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Go's `v, ok := <-ch`: `Some(v)`, or `None` once the channel is closed and drained.
    /// Blocks while there is nothing to receive.
    pub fn recv(&self) -> Option<T> {
        let lock = &self.c.state;
        lock.raw_lock();
        // SAFETY: held (raw_lock above) until the unlock below or g0's unlock_chan.
        let st = unsafe { lock.get_locked() };
        match self.try_recv_locked(st) {
            Ok((v, waker)) => {
                // SAFETY: held since raw_lock.
                unsafe { lock.raw_unlock() };
                if let Some(gp) = waker {
                    // SAFETY: gp's sudog was taken off sendq under the lock.
                    unsafe { goready(gp) };
                }
                Some(v)
            }
            Err(TryRecvError::Closed) => {
                // SAFETY: held since raw_lock.
                unsafe { lock.raw_unlock() };
                None
            }
            Err(TryRecvError::Empty) => {
                let mut sg = self.block(st, |st| &mut st.recvq, None, WaitReason::ChanReceive);
                if sg.success {
                    sg.elem.take()
                } else {
                    None
                }
            }
        }
    }

    /// Under the lock: a value and, if a blocked sender was completed, its goroutine.
    fn try_recv_locked(&self, st: &mut State<T>) -> Result<(T, Option<*mut G>), TryRecvError> {
        if let Some(sg) = st.sendq.pop_front() {
            // SAFETY: a sudog on sendq belongs to a parked sender; off the queue, it is ours.
            unsafe {
                let theirs = (*sg).elem.take().expect("a blocked sender holds its value");
                (*sg).success = true;
                let v = if self.c.cap == 0 {
                    theirs
                } else {
                    // The buffer is full (a sender waits): take its head, append theirs.
                    let head = st
                        .buf
                        .pop_front()
                        .expect("a sender waits only on a full buffer");
                    st.buf.push_back(theirs);
                    head
                };
                return Ok((v, Some((*sg).g)));
            }
        }
        if let Some(v) = st.buf.pop_front() {
            return Ok((v, None));
        }
        if st.closed {
            return Err(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }

    /// A receive that never blocks (Go: `select { case v := <-ch: default: }`).
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut st = self.c.state.lock();
        let r = self.try_recv_locked(&mut st);
        drop(st);
        let (v, waker) = r?;
        if let Some(gp) = waker {
            // SAFETY: as in `recv`.
            unsafe { goready(gp) };
        }
        Ok(v)
    }

    /// Go's `close(ch)`: receivers drain what is buffered, then get `None`; blocked senders
    /// panic.
    ///
    /// # Panics
    /// "close of closed channel", if it is closed already.
    pub fn close(&self) {
        let mut st = self.c.state.lock();
        if st.closed {
            drop(st);
            panic!("close of closed channel");
        }
        st.closed = true;
        let mut waiters = core::mem::take(&mut st.recvq);
        waiters.append(&mut st.sendq);
        // SAFETY: off the queues under the lock: ours; success stays false (closed).
        let woken: VecDeque<*mut G> = waiters.into_iter().map(|sg| unsafe { (*sg).g }).collect();
        drop(st);
        for gp in woken {
            // SAFETY: each was parked on this channel and taken off its queue under the lock.
            unsafe { goready(gp) };
        }
    }

    /// Whether `close` has been called.
    pub fn is_closed(&self) -> bool {
        self.c.state.lock().closed
    }
}

/// Go's `for v := range ch`: receives until the channel is closed and drained.
impl<T: Send> Iterator for Chan<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv()
    }
}
