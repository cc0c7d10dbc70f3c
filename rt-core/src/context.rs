//! Cancellation and deadlines across goroutines: Go's package `context`, sized for rt-core
//! (no values, no causes, no custom context types).
//!
//! A [`Context`] is a cheap handle (an `Arc`) on a node of a tree. [`Context::background`] is a
//! root that is never cancelled. [`with_cancel`] makes a child cancelled by its
//! [`CancelFunc`] or by its parent's cancellation; [`with_deadline`] and [`with_timeout`] make
//! one also cancelled, with [`ContextError::DeadlineExceeded`], when its deadline passes (an
//! [`after_func`](crate::time::after_func) timer). A goroutine waits for cancellation with `recv(ctx.done()) -> _` in
//! `select!`: [`Context::done`] is a channel that is closed on cancellation, never sent on.
//!
//! Invariants:
//! - `err` is set once, under the node's lock, before `done` is closed; so whoever is woken by
//!   `done` sees `err()`;
//! - a node with `err` set has no children and no timer: cancelling takes both out under the
//!   lock, then closes `done`, stops the timer and cancels the children (with the same error)
//!   outside it; a child added to a cancelled parent is born cancelled (the parent's lock
//!   decides which comes first), so cancelling a parent cancels every descendant;
//! - a cancelled node is removed from its parent's children (no leak while the parent lives);
//!   an uncancelled one stays until the parent is cancelled, as in Go (call the `CancelFunc`);
//! - a child's deadline is the earlier of its own and its parent's.
//!
//! Locks: each node's state is under the runtime's spinlock ([`crate::sync::SpinLock`], lock.rs),
//! not the parking [`crate::sync::Mutex`]: the critical sections are a few instructions, and
//! cancel may run anywhere a goroutine runs, including the goroutine of a deadline's timer.
//! No lock is held while another is taken: cancelling a tree takes each node's lock in turn
//! (iteratively: no recursion, whatever the depth), and removal from the parent takes the
//! parent's lock after the child's is released.
//!
//! Go's counterpart: context/context.go (`cancelCtx`, `timerCtx`, `propagateCancel`,
//! `removeChild`).

use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use alloc::vec;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};
use core::time::Duration;

use crate::chan::{self, Chan};
use crate::lock::Mutex as SpinLock;
use crate::time::{after_func_at, now, Timer};

/// Why a context was cancelled (Go's `context.Canceled` and `context.DeadlineExceeded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextError {
    /// Its `CancelFunc` (or an ancestor's) was called.
    Canceled,
    /// Its deadline (or an ancestor's) passed.
    DeadlineExceeded,
}

impl ContextError {
    fn code(self) -> u8 {
        match self {
            ContextError::Canceled => 1,
            ContextError::DeadlineExceeded => 2,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(ContextError::Canceled),
            2 => Some(ContextError::DeadlineExceeded),
            _ => None,
        }
    }
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl core::error::Error for ContextError {}

/// A node of the context tree.
struct Inner {
    /// The parent; none for a root. Immutable.
    parent: Option<Arc<Inner>>,
    /// False for a root ([`Context::background`]): never cancelled, keeps no children.
    cancellable: bool,
    /// When the context's deadline passes ([`now`]'s clock, ns). Immutable.
    deadline: Option<u64>,
    /// Closed on cancellation; never sent on.
    done: Chan<()>,
    /// `ContextError::code`, 0 while not cancelled: written once, under `state`'s lock, before
    /// `done` is closed; read without it.
    err: AtomicU8,
    /// The children and the deadline's timer, under the node's lock.
    state: SpinLock<State>,
}

struct State {
    /// Children not yet cancelled (Go's `cancelCtx.children`), by address (stable: the map
    /// holds them). Emptied when this node is cancelled.
    children: BTreeMap<usize, Arc<Inner>>,
    /// The deadline's timer, stopped when the context is cancelled first.
    timer: Option<Timer>,
}

impl Inner {
    fn new(parent: Option<Arc<Inner>>, cancellable: bool, deadline: Option<u64>) -> Arc<Inner> {
        Arc::new(Inner {
            parent,
            cancellable,
            deadline,
            done: chan::make(0),
            err: AtomicU8::new(0),
            state: SpinLock::new(State {
                children: BTreeMap::new(),
                timer: None,
            }),
        })
    }

    fn key(self: &Arc<Inner>) -> usize {
        Arc::as_ptr(self) as usize
    }

    fn err(&self) -> Option<ContextError> {
        ContextError::from_code(self.err.load(Ordering::Acquire))
    }

    /// Go's `propagateCancel`: `child` is cancelled with this node. Born cancelled if this
    /// node already is.
    fn adopt(self: &Arc<Inner>, child: &Arc<Inner>) {
        if !self.cancellable {
            return;
        }
        let mut st = self.state.lock();
        match self.err() {
            Some(err) => {
                drop(st);
                child.cancel(err, false);
            }
            None => {
                st.children.insert(child.key(), child.clone());
            }
        }
    }

    /// Cancels this node (if not already) and, with the same error, its descendants; with
    /// `remove`, takes it out of its parent's children. Idempotent.
    fn cancel(self: &Arc<Inner>, err: ContextError, remove: bool) {
        let mut todo = vec![self.clone()];
        while let Some(c) = todo.pop() {
            let (children, timer) = {
                let mut st = c.state.lock();
                if c.err().is_some() {
                    continue;
                }
                c.err.store(err.code(), Ordering::Release);
                (core::mem::take(&mut st.children), st.timer.take())
            };
            c.done.close();
            if let Some(t) = timer {
                t.stop();
            }
            todo.extend(children.into_values());
        }
        if remove {
            if let Some(p) = &self.parent {
                p.state.lock().children.remove(&self.key());
            }
        }
    }
}

/// Go's `context.Context`: a cancellation signal and an optional deadline, passed to the
/// goroutines doing one piece of work. Clones are handles on the same context.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

impl Context {
    /// Go's `context.Background()`: never cancelled, no deadline; the root of a tree.
    pub fn background() -> Context {
        Context {
            inner: Inner::new(None, false, None),
        }
    }

    /// Go's `context.TODO()`: the same as [`background`](Context::background), for code not
    /// yet passed a context.
    pub fn todo() -> Context {
        Context::background()
    }

    /// Go's `ctx.Done()`: closed once the context is cancelled (never, for a root). For
    /// `select!`: `recv(ctx.done()) -> _ => ...`.
    pub fn done(&self) -> &Chan<()> {
        &self.inner.done
    }

    /// Go's `ctx.Err()`: why the context was cancelled; `None` while it is not. Once `done` is
    /// closed, this is set.
    pub fn err(&self) -> Option<ContextError> {
        self.inner.err()
    }

    /// Go's `ctx.Deadline()`: when the context will be cancelled with `DeadlineExceeded`
    /// ([`now`]'s clock, ns), if it has a deadline (its own or an ancestor's, the earlier).
    pub fn deadline(&self) -> Option<u64> {
        self.inner.deadline
    }

    /// How many children this context holds (not yet cancelled): for tests of removal.
    #[doc(hidden)]
    pub fn children(&self) -> usize {
        self.inner.state.lock().children.len()
    }

    /// [`with_cancel`] as a method.
    pub fn with_cancel(&self) -> (Context, CancelFunc) {
        with_cancel(self)
    }

    /// [`with_deadline`] as a method.
    pub fn with_deadline(&self, when: u64) -> (Context, CancelFunc) {
        with_deadline(self, when)
    }

    /// [`with_timeout`] as a method.
    pub fn with_timeout(&self, d: Duration) -> (Context, CancelFunc) {
        with_timeout(self, d)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("err", &self.err())
            .field("deadline", &self.deadline())
            .finish()
    }
}

/// Go's `context.CancelFunc`: cancels its context (and so its descendants) with
/// [`ContextError::Canceled`]. Calling it again does nothing. Call it once the work is done,
/// as in Go: until then the context stays among its parent's children.
#[derive(Clone)]
pub struct CancelFunc {
    inner: Arc<Inner>,
}

impl CancelFunc {
    /// Go's `cancel()`.
    pub fn cancel(&self) {
        self.inner.cancel(ContextError::Canceled, true);
    }
}

impl fmt::Debug for CancelFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CancelFunc")
    }
}

/// Go's `context.WithCancel(parent)`: a child cancelled by the returned [`CancelFunc`] or when
/// `parent` is (with the parent's error); born cancelled if `parent` already is.
pub fn with_cancel(parent: &Context) -> (Context, CancelFunc) {
    let child = Inner::new(Some(parent.inner.clone()), true, parent.inner.deadline);
    parent.inner.adopt(&child);
    (
        Context {
            inner: child.clone(),
        },
        CancelFunc { inner: child },
    )
}

/// Go's `context.WithDeadline(parent, d)`: [`with_cancel`], also cancelled with
/// [`ContextError::DeadlineExceeded`] at `when` ([`now`]'s clock, ns) if not before. A parent's
/// earlier deadline stays the child's.
///
/// # Panics
/// Outside a goroutine, for a deadline still in the future (its timer lives on a P).
pub fn with_deadline(parent: &Context, when: u64) -> (Context, CancelFunc) {
    if parent.deadline().is_some_and(|cur| cur <= when) {
        // The parent is cancelled first (with the parent's error): no timer of our own.
        return with_cancel(parent);
    }
    let child = Inner::new(Some(parent.inner.clone()), true, Some(when));
    parent.inner.adopt(&child);
    let ctx = Context {
        inner: child.clone(),
    };
    let cancel = CancelFunc {
        inner: child.clone(),
    };
    if child.err().is_some() {
        return (ctx, cancel);
    }
    if now() >= when {
        child.cancel(ContextError::DeadlineExceeded, true);
        return (ctx, cancel);
    }
    // Weak: a stopped timer's function stays in its heap entry until the deadline, and must
    // not keep the context (and its ancestors) alive that long.
    let w: Weak<Inner> = Arc::downgrade(&child);
    let timer = after_func_at(when, move || {
        if let Some(c) = w.upgrade() {
            c.cancel(ContextError::DeadlineExceeded, true);
        }
    });
    let mut st = child.state.lock();
    if child.err().is_none() {
        st.timer = Some(timer);
    } else {
        // Cancelled meanwhile (by the parent, or by the timer itself).
        drop(st);
        timer.stop();
    }
    (ctx, cancel)
}

/// Go's `context.WithTimeout(parent, d)`: [`with_deadline`] at `d` from now.
///
/// # Panics
/// Outside a goroutine, for `d` non-zero.
pub fn with_timeout(parent: &Context, d: Duration) -> (Context, CancelFunc) {
    let d = d.as_nanos().min(u64::MAX as u128) as u64;
    with_deadline(parent, now().saturating_add(d))
}
