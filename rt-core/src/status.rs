//! A goroutine's status values, with Go's numbering (runtime2.go, the `_Gidle` … `_Gpreempted`
//! constants), so that traces and `scheddetail` lines read the same as Go's.

/// Go's `g.atomicstatus` values. `_Gscan` (0x1000) is a GC bit and has no counterpart here;
/// `_Gmoribund_unused` (5) and `_Genqueue_unused` (7) are unused in Go and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum GStatus {
    /// `_Gidle`: just allocated, not yet initialised.
    Idle = 0,
    /// `_Grunnable`: on a run queue, not executing user code; owns no stack.
    Runnable = 1,
    /// `_Grunning`: executing user code; owns its stack, has an M and a P.
    Running = 2,
    /// `_Gsyscall`: in a blocking call into the platform; has an M, not necessarily a P.
    Syscall = 3,
    /// `_Gwaiting`: parked (channel, timer, WaitGroup…); recorded somewhere that will ready it.
    Waiting = 4,
    /// `_Gdead`: unused: exited, or on a free list.
    Dead = 6,
    /// `_Gcopystack` in Go (stack being moved). Our stacks never move; kept for the numbering.
    Copystack = 8,
    /// `_Gpreempted`: stopped itself for a suspension request.
    Preempted = 9,
}

impl GStatus {
    /// Go's name for the status as `traceback` prints it (`goroutine 1 [running]:`).
    pub const fn go_name(self) -> &'static str {
        match self {
            GStatus::Idle => "idle",
            GStatus::Runnable => "runnable",
            GStatus::Running => "running",
            GStatus::Syscall => "syscall",
            GStatus::Waiting => "waiting",
            GStatus::Dead => "dead",
            GStatus::Copystack => "copystack",
            GStatus::Preempted => "preempted",
        }
    }

    /// The status for a raw value, as stored in an atomic.
    pub const fn from_raw(v: u32) -> Option<GStatus> {
        Some(match v {
            0 => GStatus::Idle,
            1 => GStatus::Runnable,
            2 => GStatus::Running,
            3 => GStatus::Syscall,
            4 => GStatus::Waiting,
            6 => GStatus::Dead,
            8 => GStatus::Copystack,
            9 => GStatus::Preempted,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::GStatus;

    #[test]
    fn numbering_matches_go_runtime2() {
        // The values of Go's _Gidle.._Gpreempted constants in runtime2.go.
        assert_eq!(GStatus::Idle as u32, 0);
        assert_eq!(GStatus::Runnable as u32, 1);
        assert_eq!(GStatus::Running as u32, 2);
        assert_eq!(GStatus::Syscall as u32, 3);
        assert_eq!(GStatus::Waiting as u32, 4);
        assert_eq!(GStatus::Dead as u32, 6);
        assert_eq!(GStatus::Copystack as u32, 8);
        assert_eq!(GStatus::Preempted as u32, 9);
    }

    #[test]
    fn raw_round_trip_and_gaps() {
        for v in 0..16 {
            match GStatus::from_raw(v) {
                Some(s) => assert_eq!(s as u32, v),
                None => assert!(matches!(v, 5 | 7 | 10..=15), "{v} should decode"),
            }
        }
        assert_eq!(GStatus::Running.go_name(), "running");
    }
}
