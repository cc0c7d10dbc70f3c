# Run by `cargo xtask test` (xtask/src/gdb.rs self_test) through `cargo xtask gdb --test
# gdb_goroutines --batch tests/gdb/goroutines.gdb`: stop where the kernel has goroutines
# parked, list them, and walk one's frames from its gobuf.
hbreak gdb_stop_here
continue
info goroutines
goroutine 2 bt
